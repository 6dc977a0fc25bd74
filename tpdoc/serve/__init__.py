"""`tpdoc serve`: a model kept loaded behind an OpenAI-compatible HTTP API.

In: a ``DocumentQA`` (a loaded model with its visual-token and page-prefix caches) and
HTTP requests in OpenAI's chat-completions format, each carrying a question and a
document as a base64 data URL. Out: answers in OpenAI's format (streamed as server-sent
events on request) with what ``tpdoc ask --json`` reports in a ``tpdoc`` field, and
errors in OpenAI's error shape.

The pieces, request to answer:

- ``protocol``: the request's JSON -> a question, a document part and ``AskOptions``;
  results and errors -> OpenAI's JSON shapes;
- ``documents``: a data URL -> a private temporary file, removed when its request is done;
- ``batching``: one thread runs the model; the requests waiting when it is free go
  through ``DocumentQA.ask_many`` together;
- ``app``: the FastAPI app that joins them, and the uvicorn server;
- ``wire``: an ``AnswerResult`` to JSON and back, for clients that render it
  (``tpdoc ask --server``);
- ``client``: ``tpdoc ask --server URL`` (standard library only: no FastAPI; torch only
  for a terminal's panel, through ``wire``).

FastAPI and uvicorn come with the ``serve`` extra (``pip install 'tpdoc[serve]'``);
only ``app`` and ``protocol`` import them.
"""

SERVER_ENV = "TPDOC_SERVER"  # the URL `tpdoc ask` sends its questions to
DEFAULT_HOST = "127.0.0.1"  # loopback: this machine only
DEFAULT_PORT = 8765
DEFAULT_MAX_BODY = 50 * 2**20  # bytes; base64 makes a document 4/3 larger than its file
# Requests per DocumentQA.ask_many call (later arrivals wait for the next): 16 on a GPU;
# one at a time elsewhere, where batching measured 0.85x the throughput of one at a time
# (benchmarks/serve.py on a 2-core CPU: pages padded to the longest, no idle width to fill).
MAX_BATCH_CUDA = 16
MAX_BATCH_OTHER = 1
MAX_PENDING = 64  # requests waiting for the model; more are refused with 503
GRACEFUL_SHUTDOWN_SECONDS = 30  # at Ctrl-C/SIGTERM, how long requests in flight may finish
