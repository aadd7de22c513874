"""``python -m lit_plugins <command>``: see `lit_plugins.cli.main`."""

from lit_plugins.cli import main

if __name__ == "__main__":
    main.run()
