"""The ceilings the shop is compared with, measured in the same run on the same machine.

nginx serving a static file of the product page's size (HTTP), a minimal Flask app under the shop's gunicorn
settings (framework: a template page of the same size, the same page plus one row read through SQLAlchemy,
and a POST that runs place-order's SQL plus one RQ enqueue), and pgbench running that same SQL (database).
"""
