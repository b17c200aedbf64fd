"""``python -m spinsim`` is the ``spinsim`` command."""

from spinsim.cli import main

if __name__ == "__main__":
    main()
