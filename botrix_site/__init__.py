"""The botrix_site Django project that serves the jobupdates app."""
