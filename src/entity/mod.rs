//! sea-orm entities: one file per table of the schema in `migration/`.

pub mod audit_log;
pub mod connection_lease;
pub mod datalogger;
pub mod device_command;
pub mod device_event;
pub mod discovered_topic;
pub mod event_relay;
pub mod gateway;
pub mod instance;
pub mod mqtt_connection;
pub mod mqtt_connection_log;
pub mod mqtt_parsing_log;
pub mod mqtt_topic;
pub mod sensor;
pub mod sensor_reading;
pub mod site;
