//! Schemas of response bodies whose types live outside the API (the parser registry, replay,
//! the job board): the document describes them through these mirrors, never built, and the
//! response tests check real bodies against them.
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use utoipa::openapi::Object;
use utoipa::ToSchema;

use super::schema;

/// One parser of the registry (`crate::parsers::ParserInfo`).
#[derive(ToSchema)]
#[schema(as = Parser)]
pub struct ParserInfoSchema {
    pub name: String,
    #[schema(schema_with = parser_kind_schema)]
    pub kind: String,
    pub description: String,
    /// The JSON Schema every payload must satisfy.
    #[schema(value_type = Object)]
    pub schema: serde_json::Value,
    /// The commands its devices accept (`crate::parsers::CommandInfo`).
    pub commands: Vec<CommandInfoSchema>,
}

/// A command template of a parser.
#[derive(ToSchema)]
#[schema(as = CommandTemplate)]
pub struct CommandInfoSchema {
    /// Sent as `{"template": name, "args": {...}}` to `POST /api/sites/{site_id}/commands`.
    pub name: String,
    pub description: String,
    /// The JSON Schema of `args`.
    #[schema(value_type = Object)]
    pub args: serde_json::Value,
    /// The topic with its `{argument}` placeholders.
    pub topic: String,
    /// Whether a device reply confirms it (status `confirmed`).
    pub confirmed_by_reply: bool,
    /// Shown on the Devices page as an on/off switch beside sensors of this name.
    #[schema(nullable = false)]
    pub switch: Option<SwitchInfoSchema>,
}

/// How the Devices page shows a command as a switch.
#[derive(ToSchema)]
#[schema(as = CommandSwitch)]
pub struct SwitchInfoSchema {
    /// Sensor name with `{argument}` placeholders, e.g. `relay_{channel}`.
    pub sensor: String,
    /// The argument that carries the state.
    pub arg: String,
    /// Any JSON value.
    #[schema(value_type = Value)]
    pub on: serde_json::Value,
    /// Any JSON value.
    #[schema(value_type = Value)]
    pub off: serde_json::Value,
}

fn parser_kind_schema() -> Object {
    schema::string()
        .enum_values(Some(["builtin", "declarative"]))
        .build()
}

/// What a parser wants stored (`crate::parsers::ParseOutput`).
#[derive(ToSchema)]
#[schema(as = ParseOutput)]
pub struct ParseOutputSchema {
    pub gateways: Vec<GatewayRecordSchema>,
    pub dataloggers: Vec<DataloggerRecordSchema>,
}

#[derive(ToSchema)]
#[schema(as = GatewayRecord)]
pub struct GatewayRecordSchema {
    pub identifier: String,
    /// `null` when the message says nothing about reachability.
    #[schema(required)]
    pub online: Option<bool>,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    pub ts: DateTime<Utc>,
}

#[derive(ToSchema)]
#[schema(as = DataloggerRecord)]
pub struct DataloggerRecordSchema {
    pub gateway: String,
    pub identifier: String,
    pub ts: DateTime<Utc>,
    pub sensors: Vec<SensorValueSchema>,
}

#[derive(ToSchema)]
#[schema(as = SensorValue)]
pub struct SensorValueSchema {
    pub name: String,
    pub value: f64,
    #[schema(required)]
    pub unit: Option<String>,
}

/// The outcome of replaying a parsing-log row (`crate::pipeline::replay::ReplayOutcome`): `ok`
/// with what was stored, or the error of today's parse.
#[derive(ToSchema)]
#[schema(as = ReplayOutcome)]
pub struct ReplayOutcomeSchema {
    pub id: i32,
    pub ok: bool,
    #[schema(required)]
    pub error: Option<String>,
    #[schema(required)]
    pub output: Option<ParseOutputSchema>,
}

/// Where a parsing-log row's error points in its payload
/// (`crate::parsers::ErrorPosition`).
#[derive(ToSchema)]
#[schema(as = ErrorPosition)]
#[serde(untagged)]
pub enum ErrorPositionSchema {
    /// The payload is not JSON: where it stops being JSON, 1-based; the column counts
    /// characters (Unicode code points) of the payload text.
    #[schema(title = "TextPosition")]
    Text {
        #[schema(minimum = 1)]
        line: u64,
        #[schema(minimum = 1)]
        column: u64,
    },
    /// A value a rule refused, as a JSON pointer ("" is the whole payload); the value may be
    /// absent when the rule asked for it.
    #[schema(title = "ValuePosition")]
    Value { pointer: String },
}

/// A scheduled job with its last outcome (`crate::jobs::JobStatus`).
#[derive(ToSchema)]
#[schema(as = JobStatus)]
pub struct JobStatusSchema {
    pub name: String,
    pub schedule: String,
    #[schema(required)]
    pub last_run: Option<DateTime<Utc>>,
    #[schema(required)]
    pub last_result: Option<String>,
    #[schema(required)]
    pub last_error: Option<String>,
}
