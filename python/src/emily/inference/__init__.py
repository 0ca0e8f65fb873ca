"""The inference service: llama.cpp with parallel slots, over Zenoh and OpenAI HTTP.

Modules, bottom to top: ``config`` (settings), ``errors``, ``backend`` (which device
really runs the model), ``prompt`` (chat templates and the few-shot fallback, markup
kept apart from message text), ``sampler`` (per-request sampler chains, log-probs),
``engine`` (the loaded model, request planning), ``decoder`` (continuous batching in
one llama.cpp context, the prefix cache), ``scheduler`` (bounded queue, timeouts,
cancellation), ``metrics``, ``bus_api`` (Zenoh queryables), ``structured`` (JSON and
tool-call grammars), ``openai_schemas``/``openai_shapes``/``embeddings``/``http_api``
(OpenAI-compatible HTTP), ``service`` (the ``emily serve inference`` process), and
``store``/``models`` (``emily model pull/list/use/rm``).
"""
