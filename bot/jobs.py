"""The job contract between the bot (producer) and the workers (consumers).

A job is a small JSON object of ids and options — never image bytes, never a token —
enqueued with RQ's JSON serializer (no pickle anywhere on the queue path). The worker
runs `worker.tasks.run_job(job)`; the bot only names that function, it never imports it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

TASK = "worker.tasks.run_job"
ON_FAILURE = "worker.tasks.on_job_failure"  # RQ calls it when a job fails, also when its worker died
OPERATIONS = ("colorize", "style", "styles")


@dataclass(frozen=True)
class Job:
    op: str  # one of OPERATIONS
    chat_id: int
    request_id: int  # message id of the request (the photo, the command or the keyboard tapped)
    reply_to: int  # message id of the photo the result answers
    file_id: str | None  # the content image (None for "styles", the preset sheet)
    as_document: bool  # a file in gives a file out
    user_id: int | None = None
    status_message_id: int | None = None
    file_name: str | None = None
    options: dict = field(default_factory=dict)  # style: name | style_file_id, strength, keep_colors, hq

    def __post_init__(self):
        if self.op not in OPERATIONS:
            raise ValueError(f"unknown operation {self.op!r}")

    @property
    def job_id(self) -> str:
        """One job per request: the same Telegram update delivered twice maps to the same id."""
        return f"pb-{self.chat_id}-{self.request_id}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Job":
        return cls(**d)
