"""The dashboard: a static page at ``/ui`` and the admin JSON API it reads
(``/v1/crossroads/admin/...``), both behind the admin key. See docs/dashboard.md."""
