"""The baseline: a bare Flask JSON endpoint, run by the benchmark on the service's gunicorn settings.

It parses the JSON body and answers ``{"cards": []}`` — the least any JSON hook endpoint does.
"""

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.post("/bare")
def bare():
    request.get_json()
    return jsonify({"cards": []})
