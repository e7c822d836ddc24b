"""The entity types the privacy scan reports, their default sensitivity, and the detection
settings (:class:`PrivacyConfig`). Configuration vocabulary: a leaf, imported by the config
and by the privacy package (:mod:`hybridmcp.policy.privacy`), which does the scanning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hybridmcp.sensitivity import Sensitivity

# Entity names: Presidio's own, the detect-secrets plugin names translated to the same style,
# and the ones our patterns emit.
_DETECT_SECRETS_ENTITIES: dict[str, str] = {
    "AWSKeyDetector": "AWS_ACCESS_KEY",
    "ArtifactoryDetector": "ARTIFACTORY_TOKEN",
    "AzureStorageKeyDetector": "AZURE_STORAGE_KEY",
    "BasicAuthDetector": "BASIC_AUTH",
    "CloudantDetector": "CLOUDANT_CREDENTIAL",
    "DiscordBotTokenDetector": "DISCORD_TOKEN",
    "GitHubTokenDetector": "GITHUB_TOKEN",
    "GitLabTokenDetector": "GITLAB_TOKEN",
    "IbmCloudIamDetector": "IBM_CLOUD_IAM_KEY",
    "IbmCosHmacDetector": "IBM_COS_HMAC_KEY",
    "JwtTokenDetector": "JWT",
    "MailchimpDetector": "MAILCHIMP_KEY",
    "NpmDetector": "NPM_TOKEN",
    "OpenAIDetector": "OPENAI_KEY",
    "PrivateKeyDetector": "PRIVATE_KEY",
    "PypiTokenDetector": "PYPI_TOKEN",
    "SendGridDetector": "SENDGRID_KEY",
    "SlackDetector": "SLACK_TOKEN",
    "SoftlayerDetector": "SOFTLAYER_KEY",
    "SquareOAuthDetector": "SQUARE_OAUTH_SECRET",
    "StripeDetector": "STRIPE_KEY",
    "TelegramBotTokenDetector": "TELEGRAM_TOKEN",
    "TwilioKeyDetector": "TWILIO_KEY",
}
_SECRET_ENTITIES: frozenset[str] = frozenset(
    {
        *_DETECT_SECRETS_ENTITIES.values(),
        "SECRET_KEYWORD",
        "API_KEY",
        "ANTHROPIC_KEY",
        "GOOGLE_API_KEY",
        "BEARER_TOKEN",
        "HIGH_ENTROPY_STRING",
    }
)
_PRESIDIO_ENTITIES: frozenset[str] = frozenset(
    {
        "EMAIL_ADDRESS",
        "PHONE_NUMBER",
        "CREDIT_CARD",
        "IBAN_CODE",
        "US_SSN",
        "US_ITIN",
        "US_PASSPORT",
        "US_BANK_NUMBER",
        "US_DRIVER_LICENSE",
        "MEDICAL_LICENSE",
        "UK_NHS",
        "IP_ADDRESS",
        "MAC_ADDRESS",
        "CRYPTO",
        "URL",
        "UUID",
        "DATE_TIME",
    }
)
KNOWN_ENTITIES: frozenset[str] = _PRESIDIO_ENTITIES | _SECRET_ENTITIES
"""Every entity type this module can report."""
DEFAULT_DISABLED_ENTITIES: frozenset[str] = frozenset({"URL", "UUID", "DATE_TIME", "UK_NHS"})
"""Off by default. URL, UUID and DATE_TIME are what many tool calls are *about* (fetch a URL,
look up a request id, book a date): redacting them would break the call while protecting
little. UK_NHS is any ten-digit number passing a mod-11 check: one epoch timestamp in eleven.
Enable them through ``enabled_entities`` where they matter."""

_RESTRICTED_DEFAULTS = {
    "CREDIT_CARD",
    "US_SSN",
    "US_ITIN",
    "IBAN_CODE",
    "US_BANK_NUMBER",
    "US_PASSPORT",
    "UK_NHS",
    "CRYPTO",
} | (_SECRET_ENTITIES - {"HIGH_ENTROPY_STRING"})
_CONFIDENTIAL_DEFAULTS = {
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "IP_ADDRESS",
    "MAC_ADDRESS",
    "PERSON",
    "LOCATION",
    "NRP",
    "US_DRIVER_LICENSE",
    "MEDICAL_LICENSE",
    # An unexplained random-looking string: probably a credential, but not certainly.
    "HIGH_ENTROPY_STRING",
}


def _default_entity_levels() -> dict[str, Sensitivity]:
    levels = {name: Sensitivity.restricted for name in _RESTRICTED_DEFAULTS}
    levels.update({name: Sensitivity.confidential for name in _CONFIDENTIAL_DEFAULTS})
    return dict(sorted(levels.items()))


class PrivacyConfig(BaseModel):
    """How strict detection is and how each kind of data is classified."""

    model_config = ConfigDict(extra="forbid")

    min_score: float = Field(default=0.5, ge=0.0, le=1.0)
    entity_levels: dict[str, Sensitivity] = Field(default_factory=_default_entity_levels)
    """Level per entity type, merged over the defaults (so lowering one level cannot silently
    lower all the others); an entity listed nowhere counts as ``internal``."""
    enabled_entities: set[str] | None = None
    """Only these entity types are reported; ``None`` means every known type except
    :data:`DEFAULT_DISABLED_ENTITIES`."""
    disabled_entities: set[str] = Field(default_factory=set)
    """Never reported, whatever ``enabled_entities`` says."""
    allow_list: set[str] = Field(default_factory=set)
    """Exact values that are never findings (a public support address, a test card)."""
    split_fields: bool = True
    """Also look for values split across sibling fields (card halves, phone parts)."""

    @field_validator("entity_levels", mode="before")
    @classmethod
    def _parse_levels(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            given = {str(k).upper(): Sensitivity.parse(v) for k, v in value.items()}
            return {**_default_entity_levels(), **given}
        return value

    @field_validator("enabled_entities", "disabled_entities", mode="before")
    @classmethod
    def _known_names(cls, value: Any) -> Any:
        # A typo ("EMAIL" for "EMAIL_ADDRESS") would otherwise disable nothing, silently.
        if value is None:
            return None
        names = {value.upper()} if isinstance(value, str) else {str(v).upper() for v in value}
        unknown = sorted(names - KNOWN_ENTITIES)
        if unknown:
            raise ValueError(
                f"unknown entity type(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(KNOWN_ENTITIES))}"
            )
        return names

    def level_for(self, entity_type: str) -> Sensitivity:
        return self.entity_levels.get(entity_type, Sensitivity.internal)

    def active_entities(self) -> frozenset[str]:
        if self.enabled_entities is None:
            base = KNOWN_ENTITIES - DEFAULT_DISABLED_ENTITIES
        else:
            base = frozenset(self.enabled_entities)
        return frozenset(base - self.disabled_entities)
