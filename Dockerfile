# syntax=docker/dockerfile:1
# berth build: bundle iris (sklearn/skops, sha256:21c4fd940081e0eb4a11d6b6db72b7f8ea3b1b23829779d9f3451c40baa9501f)
# saved with Python 3.11.7; berth installed from: ./wheels/berth-0.1.0-py3-none-any.whl
#   docker build -t berth-iris:21c4fd940081 .
#   docker run --rm -p 8080:8080 berth-iris:21c4fd940081
# Settings are environment variables: docker run -e BERTH_WORKERS=2 -e BERTH_API_KEYS=... (docs/serving.md)

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
COPY requirements.txt ./
COPY wheels/ ./wheels/
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir -r requirements.txt

FROM python:3.11-slim-bookworm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    BERTH_HOST=0.0.0.0 \
    BERTH_PORT=8080
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin berth
COPY --from=build /opt/venv /opt/venv
COPY model/ /opt/ml/model/
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('SAGEMAKER_BIND_TO_PORT') or os.environ.get('AIP_HTTP_PORT') or os.environ.get('BERTH_PORT', '8080'); urllib.request.urlopen('http://127.0.0.1:' + port + '/health/live', timeout=4)"]
ENTRYPOINT ["berth", "serve", "/opt/ml/model"]
