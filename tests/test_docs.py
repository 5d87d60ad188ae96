"""Every setting and every CLI command is documented."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

from crossroads import config as cfg
from crossroads.cli import _register_plugins, app
from crossroads.config import plans
from crossroads.signals.complexity import ComplexitySignalConfig
from crossroads.signals.domain import DomainSignalConfig
from crossroads.signals.jailbreak import JailbreakSignalConfig
from crossroads.signals.ood import OodSignalConfig

DOCS = Path(__file__).parent.parent / "docs"
README = Path(__file__).parent.parent / "README.md"


def _settings(model: type[BaseModel]) -> set[str]:
    names = set()
    for name, field in model.model_fields.items():
        names.add(field.alias or name)
    return names


def test_every_setting_is_in_the_configuration_reference() -> None:
    text = (DOCS / "configuration.md").read_text()
    documented = set(re.findall(r"`([a-z_]+)(?:\[\])?`", text))
    documented |= set(re.findall(r"^([a-z_]+):", text, flags=re.MULTILINE))  # top-level keys
    models = [
        cfg.Config,
        cfg.ServerConfig,
        cfg.ApiKey,
        cfg.StoreConfig,
        cfg.UiConfig,
        cfg.MetricsConfig,
        cfg.OpenTelemetryConfig,
        cfg.Timeouts,
        cfg.OpenAIUpstreamConfig,
        cfg.AnthropicUpstreamConfig,
        cfg.Price,
        cfg.ModelConfig,
        cfg.KeywordSignal,
        cfg.RegexSignal,
        cfg.TokensSignal,
        cfg.MetadataSignal,
        cfg.HasCodeSignal,
        cfg.EmbeddingSignal,
        cfg.LanguageSignal,
        cfg.PiiSignal,
        DomainSignalConfig,
        ComplexitySignalConfig,
        JailbreakSignalConfig,
        OodSignalConfig,
        cfg.Decision,
        cfg.DefaultDecision,
        cfg.Entrypoint,
        cfg.WeightedSelection,
        cfg.EndpointConfig,
        cfg.DispatchConfig,
        cfg.RetryConfig,
        cfg.BreakerConfig,
        cfg.RouterSelection,
        cfg.LinUCBSelection,
        cfg.ThompsonSelection,
        cfg.EMASelection,
        cfg.OnlineFeatures,
        cfg.OnlineDecay,
        cfg.WarmStart,
        cfg.LocalUpstreamConfig,
        cfg.MockUpstreamConfig,
        plans.Stage,
        plans.CascadePlan,
        plans.FanoutPlan,
        plans.CachePlan,
        plans.RedactPlan,
        plans.ChecksAccept,
        plans.AgreementAccept,
        plans.ConfidenceAccept,
        plans.VerifierAccept,
        cfg.StateConfig,
        cfg.StateFailurePolicy,
        cfg.BudgetSignal,
        cfg.PolicyConfig,
        cfg.BudgetConfig,
        cfg.TeamConfig,
        cfg.FeedbackConfig,
    ]
    missing = {f"{m.__name__}.{s}" for m in models for s in _settings(m) if s not in documented}
    assert not missing, f"document these settings in docs/configuration.md: {sorted(missing)}"


def test_every_cli_command_is_in_the_readme() -> None:
    _register_plugins()
    text = README.read_text()
    commands = [c.name or c.callback.__name__ for c in app.registered_commands]
    missing = [c for c in commands if f"crossroads {c}" not in text]
    # A group's command may be named in full or on a line that shows the group
    # ("crossroads keys list ...  # also: crossroads keys show | rotate").
    for group in app.registered_groups:
        lines = [line for line in text.splitlines() if f"crossroads {group.name}" in line]
        for c in group.typer_instance.registered_commands:
            name = c.name or c.callback.__name__
            if not any(re.search(rf"\b{re.escape(name)}\b", line) for line in lines):
                missing.append(f"{group.name} {name}")
    assert not missing, f"document these commands in README.md: {missing}"
