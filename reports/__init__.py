"""liftwatch.reports: regulator statistics (rollup, queries, definitions), the stats API and report files.

``stats`` pure definitions; ``rollup`` month refresh; ``monthly`` the report of a month and scope;
``export``/``pdf`` CSV, XLSX and PDF; ``api`` the HTTP router; ``cli`` ``liftwatch report``.
"""
