"""``python -m vlmcap.cli``: the same as the ``vlmcap`` command."""

from vlmcap.cli.app import main

if __name__ == "__main__":
    main()
