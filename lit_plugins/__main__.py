"""``python -m lit_plugins <command>``: see `lit_plugins.corpus.cli`."""

from lit_plugins.corpus import cli

if __name__ == "__main__":
    cli.run()
