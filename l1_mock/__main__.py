"""``python -m l1_mock``: runs the mock L1 node's command line."""

from l1_mock.cli import main

if __name__ == "__main__":
    main()
