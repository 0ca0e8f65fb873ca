"""The inference service: llama.cpp behind a bounded queue, over Zenoh and OpenAI HTTP.

Modules, bottom to top: ``config`` (settings), ``errors``, ``backend`` (which device
really runs the model), ``prompt`` (chat templates and the few-shot fallback),
``engine`` (one ``llama_cpp.Llama``), ``scheduler`` (bounded queue, timeouts,
cancellation), ``metrics``, ``bus_api`` (Zenoh queryables), ``openai_schemas`` and
``http_api`` (OpenAI-compatible HTTP), ``service`` (the ``emily serve inference``
process) and ``store`` (``emily model pull/list``).
"""
