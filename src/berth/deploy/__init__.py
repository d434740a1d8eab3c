"""Shipping berth models: container recipes, cloud contracts, Kubernetes manifests, Ray Serve, distributed batch."""
