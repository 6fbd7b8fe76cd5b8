//! Parser registry: turns one MQTT payload, plus the captures of the topic pattern that matched it,
//! into gateway and datalogger records, using built-in Rust parsers or declarative JSON files.
//!
//! The parts: `parser` (the trait and its input), `records` (what parsers produce), `errors`,
//! `error_position` (where a logged error points in its payload),
//! `decode` (bytes to JSON), `payload_schema` (validating a payload), `timestamps`,
//! `json_pointer`, `registry`, `store` (the registry in force, swapped whole on reload), one file
//! per built-in parser, `declarative` for the JSON parsers of the `parsers/` folder, and
//! `command_template` for the commands a definition declares for its devices.

mod command_template;
mod datalogger_readings_v1;
mod declarative;
mod decode;
mod error_position;
mod errors;
mod flat_telemetry;
mod gateway_status_v1;
mod json_pointer;
mod parser;
mod payload_schema;
mod plain_json;
mod records;
mod registry;
mod store;
mod timestamps;

#[cfg(test)]
pub(crate) mod test_support;

pub use command_template::{
    ArgumentError, CommandInfo, CommandTemplate, ConfirmRule, RenderedCommand, SwitchInfo,
};
pub use datalogger_readings_v1::DataloggerReadingsV1;
pub use declarative::{definition_schema, outdated_schema_copy, DeclarativeParser};
pub use decode::{decode_payload, MAX_DEPTH};
pub use error_position::{error_position, ErrorPosition};
pub use errors::{LoadError, ParseError};
pub use flat_telemetry::FlatTelemetry;
pub use gateway_status_v1::GatewayStatusV1;
pub use parser::{BytesInput, ParseInput, Parser, ParserInfo};
pub use records::{DataloggerRecord, GatewayRecord, ParseOutput, SensorValue};
pub use registry::Registry;
pub use store::ParserStore;

// The helpers every built-in parser uses, under the names they have always had here.
pub(crate) use json_pointer::escape_pointer_token;
pub(crate) use parser::{capture, payload_or_capture};
pub(crate) use payload_schema::{compile_schema, truncate, validate_payload};
pub(crate) use records::SensorSet;
pub(crate) use timestamps::{timestamp_from_value, TimestampFormat};
