"""The live stock stream's entry point: gunicorn -c gunicorn_stream.conf.py wsgi_stream:app"""

from storefront import create_stream_app

app = create_stream_app()
