"""Find the review side's age recipients in the config, failing closed with the field named."""

from __future__ import annotations

from config.loading import ConfigError
from config.models import StorageConfig
from store.errors import KeyFormatError
from store.keys import Recipient, load_recipients


def resolve_recipients(storage: StorageConfig, source: str = "config") -> list[Recipient]:
    recipients: list[Recipient] = []
    for i, text in enumerate(storage.recipients):
        try:
            recipients.append(Recipient.parse(text))
        except KeyFormatError as exc:
            raise ConfigError(f"{source}: storage.recipients[{i}]: {exc}") from exc
    if storage.recipients_file is not None:
        try:
            recipients.extend(load_recipients(storage.recipients_file))
        except OSError as exc:
            raise ConfigError(
                f"{source}: storage.recipients_file: cannot read {storage.recipients_file}: "
                f"{exc.strerror or exc}"
            ) from exc
        except KeyFormatError as exc:
            raise ConfigError(f"{source}: storage.recipients_file: {exc}") from exc
    if not recipients:
        raise ConfigError(
            f"{source}: storage.recipients: no age recipient configured; the recorder refuses "
            "to record without one (create a key pair on the review workstation with "
            "'neoflix-capture keygen --out FILE' and put the printed age1... line here)"
        )
    return recipients
