"""`python -m hooks.apps …`: the day-two commands on registered apps (hooks/app_admin.py); the
package itself (hooks/apps/__init__.py) stays pure."""

from hooks.app_admin import cli

cli()
