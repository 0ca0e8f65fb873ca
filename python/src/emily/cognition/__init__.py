"""Cognition: the service that runs one cycle per observation (reflex, alpha gating,
global workspace, active inference) and the shared neural building blocks in
``emily.cognition.neural`` (spiking layers, energy accounting, MoE, alpha gating)."""
