"""`python -m rote.cli` is `rote`."""

from rote.cli import main

main()
