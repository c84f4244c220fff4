"""`python -m chaos`: see chaos.cli."""

from chaos.cli import main

# Worker processes started with forkserver or spawn import __main__ again: run only here.
if __name__ == "__main__":
    raise SystemExit(main())
