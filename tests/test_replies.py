"""The reply to a new message is written by hand, once (``endpoint.replies.queued``): it must
be what Flask's jsonify writes for the same reply, whatever the message_id."""

from __future__ import annotations

import pytest
from flask import Flask

from endpoint import replies


@pytest.mark.parametrize("message_id", ["m-1", "a/b c", "ü'\"x\\é\u2028😀"])
def test_the_queued_reply_is_what_jsonify_writes(message_id: str) -> None:
    app = Flask("replies")
    app.json.sort_keys = False  # type: ignore[attr-defined]  # as the receiver sets it
    with app.test_request_context():
        written = replies.queued(message_id, None, duplicate=False)
        expected = replies._reply(
            200,
            {
                "message_id": message_id,
                "status": "queued",
                "notifications": [
                    {
                        "level": "info",
                        "subject": "Message queued",
                        "description": "The message was recorded and queued",
                    }
                ],
            },
        )
    assert written.get_data() == expected.get_data()
    assert (written.status_code, written.mimetype) == (expected.status_code, expected.mimetype)
    assert written.get_json()["message_id"] == message_id
