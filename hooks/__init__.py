"""Python side of the openCenter GitOps templates.

Pure functions compute what to write; thin adapters talk to git, sops, ssh keys and Copier.
Copier tasks run the entry scripts in this folder with the interpreter that runs Copier.
"""
