"""Request/response codecs bound to routes: ``simple`` (/predict), ``mlflow`` (/invocations), ``v2`` (OIP)."""
