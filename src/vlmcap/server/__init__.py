"""``vlmcap serve``'s machinery: vLLM's OpenAI-compatible server as a child process.

    command    the server command line built from a plugin + config (``ServeOptions``)
    process    the child process: start, health, signals, stop
    url_file   how clients find the server (written once healthy, removed on shutdown)

The client side (``vlmcap.client``) only reads the URL file; it never starts a server.
"""
