"""Zaqar's v2 API on AWS Lambda through Chalice.

Routes live in blueprints under chalicelib/rest; each one checks the request,
calls an action (chalicelib/actions) and shapes the answer.
"""
from chalice import Chalice

from chalicelib.rest import add_method_fallbacks
from chalicelib.rest import messages, meta, queues

app = Chalice(app_name="zaqar-serverless")
app.register_blueprint(meta.bp)
app.register_blueprint(queues.bp)
app.register_blueprint(messages.bp)
add_method_fallbacks(app)
