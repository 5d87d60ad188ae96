"""The configuration schema (YAML → pydantic v2) and its loader.

A minimal config is ten lines::

    upstreams:
      - name: vllm
        base_url: http://127.0.0.1:8000/v1
    models:
      - name: small
        upstream: vllm
      - name: big
        upstream: vllm
        price: {input: 1.0, output: 3.0}
    default:
      models: [small]

Every problem is reported with its path in the YAML (``decisions[2].when.all[0]: ...``).
Secrets are never literals: upstreams name an environment variable (``api_key_env``).
``${VAR}`` and ``${VAR:-fallback}`` in string values are expanded from the environment.
"""

from __future__ import annotations

from crossroads.config.comparisons import Comparison
from crossroads.config.feedback import FeedbackConfig
from crossroads.config.loading import expand_env, format_loc, load_config, parse_config
from crossroads.config.models import (
    BreakerConfig,
    DispatchConfig,
    EndpointConfig,
    ModelConfig,
    Price,
    RetryConfig,
)
from crossroads.config.observe import MetricsConfig, OpenTelemetryConfig
from crossroads.config.online import (
    EMASelection,
    LinUCBSelection,
    OnlineDecay,
    OnlineFeatures,
    ThompsonSelection,
    WarmStart,
)
from crossroads.config.rules import (
    AllRule,
    AnyRule,
    CheapestSelection,
    Decision,
    DefaultDecision,
    Entrypoint,
    FirstSelection,
    NotRule,
    RouterSelection,
    Rule,
    SelectionConfig,
    WeightedSelection,
)
from crossroads.config.schema import Config
from crossroads.config.server import ApiKey, ServerConfig, StoreConfig
from crossroads.config.signals import (
    BudgetSignal,
    EmbeddingSignal,
    HasCodeSignal,
    KeywordSignal,
    LanguageSignal,
    MetadataSignal,
    PiiSignal,
    RegexSignal,
    SignalConfig,
    TokensSignal,
)
from crossroads.config.state import StateConfig, StateFailurePolicy
from crossroads.config.tenants import BudgetConfig, PolicyConfig, TeamConfig
from crossroads.config.ui import UiConfig
from crossroads.config.upstreams import (
    AnthropicUpstreamConfig,
    LocalUpstreamConfig,
    MockUpstreamConfig,
    OpenAIUpstreamConfig,
    Timeouts,
    Upstream,
)

__all__ = [
    "FeedbackConfig",
    "ApiKey",
    "BudgetConfig",
    "PolicyConfig",
    "TeamConfig",
    "UiConfig",
    "ServerConfig",
    "StoreConfig",
    "StateConfig",
    "StateFailurePolicy",
    "MetricsConfig",
    "OpenTelemetryConfig",
    "Timeouts",
    "OpenAIUpstreamConfig",
    "AnthropicUpstreamConfig",
    "LocalUpstreamConfig",
    "MockUpstreamConfig",
    "Upstream",
    "Price",
    "EndpointConfig",
    "ModelConfig",
    "RetryConfig",
    "BreakerConfig",
    "DispatchConfig",
    "KeywordSignal",
    "RegexSignal",
    "TokensSignal",
    "MetadataSignal",
    "HasCodeSignal",
    "EmbeddingSignal",
    "LanguageSignal",
    "PiiSignal",
    "BudgetSignal",
    "SignalConfig",
    "AllRule",
    "AnyRule",
    "NotRule",
    "Comparison",
    "Rule",
    "FirstSelection",
    "WeightedSelection",
    "CheapestSelection",
    "RouterSelection",
    "LinUCBSelection",
    "ThompsonSelection",
    "EMASelection",
    "OnlineFeatures",
    "OnlineDecay",
    "WarmStart",
    "SelectionConfig",
    "Decision",
    "DefaultDecision",
    "Entrypoint",
    "Config",
    "expand_env",
    "format_loc",
    "parse_config",
    "load_config",
]
