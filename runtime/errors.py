"""Exceptions raised by seq2seq-edge. The CLI prints their message as one line and exits with status 2."""


class Seq2SeqEdgeError(Exception):
    """Base class of every error the toolkit raises on purpose (a user error, not a bug)."""


class InputTextError(Seq2SeqEdgeError, ValueError):
    """Text that cannot be encoded: empty where that is not allowed, too long, or with unknown symbols."""


class DataFileError(Seq2SeqEdgeError, ValueError):
    """A training data file that cannot be read: missing, empty, malformed or not UTF-8."""


class TrainOptionError(Seq2SeqEdgeError, ValueError):
    """A training option out of its bounds, or two that contradict each other (``--bidirectional`` without
    ``--decoder attention``, ``--dropout 1``, ``--data`` missing, ...)."""


class BundleError(Seq2SeqEdgeError):
    """A bundle or manifest that is missing, malformed, tampered with or contradicts its model files."""

    def __init__(self, problems, where=None):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        self.where = where
        head = f"{where}: " if where else ""
        if len(self.problems) == 1:
            msg = head + self.problems[0]
        else:
            msg = head + f"{len(self.problems)} problems: " + "; ".join(self.problems)
        super().__init__(msg)


class BackendUnavailableError(Seq2SeqEdgeError, ImportError):
    """The requested inference backend is not installed; the message says what to pip install."""


class ExportError(Seq2SeqEdgeError):
    """An export that cannot proceed or did not pass its checks (graph quality or parity gate)."""


class RunFolderError(Seq2SeqEdgeError):
    """A training run folder that is missing, incomplete, or exists where --force was not given."""
