"""Our own Dockerfile checks, on dockerfile-parse's reading of it: what berth's recipe promises.

hadolint checks general practice (see test_dockerfile.py); these check berth's own promises, which hadolint
does not know: multi-stage, a non-root final user, a health check without curl, the exposed port being the one
berth listens on, an exec-form ``berth serve`` entrypoint, base images pinned to a tag.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

from dockerfile_parse import DockerfileParser


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[dict] = field(default_factory=list)

    def values(self, instruction: str) -> list[str]:
        return [i["value"] for i in self.instructions if i["instruction"] == instruction]


def parse(text: str) -> DockerfileParser:
    """A parser reading ``text`` from memory (given no file object, dockerfile-parse writes ./Dockerfile)."""
    return DockerfileParser(fileobj=io.StringIO(text))


def stages(text: str) -> list[Stage]:
    parser = parse(text)
    found: list[Stage] = []
    for instruction in parser.structure:
        if instruction["instruction"] == "FROM":
            words = instruction["value"].split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            found.append(Stage(words[0], name))
        elif found:
            found[-1].instructions.append(instruction)
    return found


def env_of(text: str) -> dict[str, str]:
    """The final stage's ENV, as dockerfile-parse reads it."""
    return dict(parse(text).envs)


def exec_form(value: str) -> list[str] | None:
    try:
        words = json.loads(value)
    except ValueError:
        return None
    return words if isinstance(words, list) and all(isinstance(w, str) for w in words) else None


def problems(text: str) -> list[str]:
    """Every promise of berth's recipe that the Dockerfile ``text`` breaks (empty when it keeps them all)."""
    found: list[str] = []
    all_stages = stages(text)
    if len(all_stages) < 2:
        found.append("not multi-stage: expected a build stage and a runtime stage")
    stage_names = {s.name for s in all_stages if s.name}
    for stage in all_stages:
        if stage.image in stage_names:
            continue
        tag = stage.image.split("/")[-1].split("@")[0].partition(":")[2]
        if "@sha256:" not in stage.image and tag in ("", "latest"):
            found.append(f"base image {stage.image} is not pinned to a tag")
    if not all_stages:
        return [*found, "no FROM"]
    final = all_stages[-1]
    users = final.values("USER")
    if not users:
        found.append("the final stage runs as root: no USER")
    elif users[-1].split(":")[0] in ("root", "0"):
        found.append(f"the final stage runs as root: USER {users[-1]}")
    health = final.values("HEALTHCHECK")
    if not health:
        found.append("no HEALTHCHECK in the final stage")
    elif "curl" in health[-1] or "wget" in health[-1]:
        found.append("HEALTHCHECK uses curl or wget, which slim images lack")
    elif "/health/live" not in health[-1]:
        found.append("HEALTHCHECK does not call the liveness route /health/live")
    entry = final.values("ENTRYPOINT")
    words = exec_form(entry[-1]) if entry else None
    if words is None:
        found.append("ENTRYPOINT missing or not in exec form (the server must be PID 1 to get SIGTERM)")
    elif words[:2] != ["berth", "serve"]:
        found.append(f"ENTRYPOINT does not start berth serve: {words}")
    exposed = [port.split("/")[0] for value in final.values("EXPOSE") for port in value.split()]
    port = env_of(text).get("BERTH_PORT")
    if not exposed:
        found.append("no EXPOSE")
    elif port is None or exposed != [port]:
        found.append(f"EXPOSE {exposed} differs from BERTH_PORT {port}")
    volumes = [path for value in final.values("VOLUME") for path in (exec_form(value) or value.split())]
    home = env_of(text).get("BERTH_HOME")
    if home is None:
        found.append("no BERTH_HOME: the prediction log would have no writable home (the user's home is /nonexistent)")
    elif home not in volumes:
        found.append(f"BERTH_HOME {home} is not a VOLUME: with a read-only root filesystem it cannot be written")
    for stage in all_stages:
        for value in stage.values("ADD"):
            if "://" in value:
                found.append(f"ADD fetches a URL: {value}")
    return found


def check_file(path: Path) -> list[str]:
    return problems(path.read_text())
