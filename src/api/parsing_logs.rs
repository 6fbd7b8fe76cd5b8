//! The parsing log as a worklist: `GET /api/mqtt/parsing-logs` narrowed by parser, topic, time
//! and whether a row was replayed, and `POST /api/mqtt/parsing-logs/replay`, which replays the
//! rows the same filters select, a bounded number per call.

use axum::extract::{RawQuery, State};
use axum::Json;
use sea_orm::sea_query::{Alias, Expr, Func};
use sea_orm::{ColumnTrait, DbBackend, QueryFilter, Select};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::foreign_schemas::ReplayOutcomeSchema;
use super::list::{select, SiteQuery};
use super::logs::{ParsingLogList, ParsingLogResponse};
use super::pagination::{Page, PageQuery};
use super::query::{parse_query, QueryBool, QueryInteger, QueryTime};
use crate::entity::mqtt_parsing_log;
use crate::pipeline::replay::{replay_all as replay_rows, ReplayOutcome};
use crate::pipeline::Limits;
use crate::state::AppState;

/// The filters of the parsing log, besides `site_id` and the page.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ParsingLogQuery {
    /// Only rows of this parser (the name the matching pattern gave, exactly).
    #[param(value_type = String, min_length = 1)]
    #[serde(default)]
    pub parser: Option<String>,
    /// Only rows whose topic contains this text (case-sensitive; `gw-1/` finds every topic
    /// with that level, the whole topic finds that topic).
    #[param(value_type = String, min_length = 1)]
    #[serde(default)]
    pub topic: Option<String>,
    /// Earliest `created_at` (inclusive), RFC 3339; a space stands for an unencoded '+'.
    #[param(value_type = String, format = DateTime)]
    #[serde(default)]
    pub from: Option<QueryTime>,
    /// Latest `created_at` (inclusive), RFC 3339; not earlier than `from`.
    #[param(value_type = String, format = DateTime)]
    #[serde(default)]
    pub to: Option<QueryTime>,
    /// `true`: only rows replayed with success (`replayed_at` set); `false`: only the others.
    #[param(value_type = bool)]
    #[serde(default)]
    pub replayed: Option<QueryBool>,
}

/// The filters, checked.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ParsingLogFilter {
    pub site_id: Option<i32>,
    pub parser: Option<String>,
    pub topic: Option<String>,
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    pub to: Option<chrono::DateTime<chrono::Utc>>,
    pub replayed: Option<bool>,
}

impl ParsingLogFilter {
    /// The filters of a query string; a 422 names the parameter at fault.
    pub fn from_query(query: &str) -> Result<ParsingLogFilter, ApiError> {
        let site_id = parse_query::<SiteQuery>(query)?.site_id.map(|id| id.0);
        let given = parse_query::<ParsingLogQuery>(query)?;
        for (name, value) in [("parser", &given.parser), ("topic", &given.topic)] {
            if value.as_deref() == Some("") {
                return Err(ApiError::validation(
                    name,
                    "must not be empty; leave the parameter out to keep every row",
                ));
            }
        }
        let from = given.from.map(|time| time.0);
        let to = given.to.map(|time| time.0);
        if let (Some(from), Some(to)) = (from, to) {
            if from > to {
                return Err(ApiError::validation("from", "must not be later than 'to'"));
            }
        }
        Ok(ParsingLogFilter {
            site_id,
            parser: given.parser,
            topic: given.topic,
            from,
            to,
            replayed: given.replayed.map(|QueryBool(value)| value),
        })
    }

    /// No stored row can hold a NUL character (PostgreSQL refuses them, MQTT forbids them in
    /// topics), so such a filter selects nothing and is not sent to the database.
    fn matches_nothing(&self) -> bool {
        [&self.parser, &self.topic]
            .into_iter()
            .flatten()
            .any(|text| text.contains('\0'))
    }

    /// One page of the rows the filters select, newest first.
    fn select(&self, backend: DbBackend, page: Page) -> Select<mqtt_parsing_log::Entity> {
        use mqtt_parsing_log::Column;
        // Here only: its `min`/`max` would shadow those of numbers elsewhere in the file.
        use sea_orm::ExprTrait;
        let mut query = select::<ParsingLogList>(self.site_id, page);
        if let Some(parser) = &self.parser {
            query = query.filter(Column::Parser.eq(parser.as_str()));
        }
        if let Some(topic) = &self.topic {
            // A plain substring test, so that '%' and '_' in a topic need no escaping.
            let function = match backend {
                DbBackend::Postgres => "strpos",
                _ => "instr",
            };
            let position = Func::cust(Alias::new(function))
                .arg(Expr::col((mqtt_parsing_log::Entity, Column::Topic)))
                .arg(topic.as_str());
            query = query.filter(Expr::expr(position).gt(0));
        }
        if let Some(from) = self.from {
            query = query.filter(Column::CreatedAt.gte(from));
        }
        if let Some(to) = self.to {
            query = query.filter(Column::CreatedAt.lte(to));
        }
        query = match self.replayed {
            Some(true) => query.filter(Column::ReplayedAt.is_not_null()),
            Some(false) => query.filter(Column::ReplayedAt.is_null()),
            None => query,
        };
        query
    }

    async fn rows(
        &self,
        state: &AppState,
        page: Page,
    ) -> Result<Vec<mqtt_parsing_log::Model>, ApiError> {
        if self.matches_nothing() {
            return Ok(Vec::new());
        }
        let backend = state.db.get_database_backend();
        Ok(self.select(backend, page).all(&state.db).await?)
    }
}

/// `GET /api/mqtt/parsing-logs`: newest first, narrowed by the filters.
pub async fn list(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<ParsingLogResponse>>, ApiError> {
    let query = query.unwrap_or_default();
    let page = parse_query::<PageQuery>(&query)?.page()?;
    let filter = ParsingLogFilter::from_query(&query)?;
    let rows = filter.rows(&state, page).await?;
    Ok(Json(
        rows.into_iter().map(ParsingLogResponse::from).collect(),
    ))
}

/// Rows one replay-all call takes at most: each is parsed and stored on its own, so a call
/// stays within an HTTP timeout.
pub const MAX_REPLAY_ROWS: u64 = 200;
const DEFAULT_REPLAY_ROWS: u64 = 100;

/// How many rows one replay-all call takes, and from where.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReplayBatchQuery {
    /// Rows to replay, 100 unless given; values above 200 are lowered to 200.
    #[param(value_type = i64, minimum = 1, default = 100)]
    #[serde(default)]
    pub limit: Option<QueryInteger>,
    /// Rows to skip, as in the list (newest first).
    #[param(value_type = i64, minimum = 0, default = 0)]
    #[serde(default)]
    pub offset: Option<QueryInteger>,
}

impl ReplayBatchQuery {
    fn page(self) -> Result<Page, ApiError> {
        if let Some(QueryInteger(value)) = self.limit {
            if value < 1 {
                return Err(ApiError::validation(
                    "limit",
                    format!("must be between 1 and {MAX_REPLAY_ROWS} (got {value})"),
                ));
            }
        }
        let page = Page::new(self.limit, self.offset)?;
        Ok(Page {
            limit: match self.limit {
                None => DEFAULT_REPLAY_ROWS,
                Some(_) => page.limit.min(MAX_REPLAY_ROWS),
            },
            offset: page.offset,
        })
    }
}

/// What a replay-all call did.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ReplayAllOutcome)]
pub struct ReplayAllResponse {
    /// The site the call was narrowed to, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site_id: Option<i32>,
    /// Rows replayed by this call (at most `limit`).
    pub replayed: usize,
    /// Of those, rows that parse now: stored, `replayed_at` set.
    pub parsed: usize,
    /// Of those, rows that still fail: left as they were; their outcome says why.
    pub still_failing: usize,
    /// More rows than `limit` matched: call again (rows that parsed drop out of
    /// `replayed=false`, so the same call moves on; otherwise raise `offset`).
    pub more: bool,
    /// One outcome per row, in list order (newest first).
    #[schema(value_type = Vec<ReplayOutcomeSchema>)]
    pub outcomes: Vec<ReplayOutcome>,
}

/// `POST /api/mqtt/parsing-logs/replay`: replays the rows the list would show for the same
/// parameters. 200 whatever each row's outcome.
pub async fn replay(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<ReplayAllResponse>, ApiError> {
    let query = query.unwrap_or_default();
    let page = parse_query::<ReplayBatchQuery>(&query)?.page()?;
    let filter = ParsingLogFilter::from_query(&query)?;
    // One row past the batch says whether more match.
    let mut rows = filter
        .rows(
            &state,
            Page {
                limit: page.limit + 1,
                offset: page.offset,
            },
        )
        .await?;
    let more = rows.len() as u64 > page.limit;
    rows.truncate(page.limit as usize);
    let limits = Limits {
        max_payload_bytes: state.config.pipeline.max_payload_bytes,
        sample_bytes: state.config.pipeline.sample_bytes,
    };
    let registry = state.parsers.current();
    let outcomes = replay_rows(&state.db, &state.hub, &registry, &limits, rows).await?;
    let parsed = outcomes.iter().filter(|outcome| outcome.ok).count();
    Ok(Json(ReplayAllResponse {
        site_id: filter.site_id,
        replayed: outcomes.len(),
        parsed,
        still_failing: outcomes.len() - parsed,
        more,
        outcomes,
    }))
}

#[cfg(test)]
mod tests {
    use sea_orm::QueryTrait;

    use super::*;

    fn filter(query: &str) -> Result<ParsingLogFilter, (String, String)> {
        ParsingLogFilter::from_query(query).map_err(|error| match error {
            ApiError::Validation { field, message } => (field, message),
            other => panic!("expected a validation error, got {other:?}"),
        })
    }

    fn page() -> Page {
        Page {
            limit: 10,
            offset: 0,
        }
    }

    #[test]
    fn every_filter_narrows_the_statement() {
        let given = filter(
            "site_id=3&parser=flat_telemetry&topic=gw-1/&from=2024-05-01T00:00:00Z\
             &to=2024-05-02T00:00:00Z&replayed=false",
        )
        .expect("valid");
        let sqlite = given
            .select(DbBackend::Sqlite, page())
            .build(DbBackend::Sqlite)
            .to_string();
        for part in [
            r#""site_id" = 3"#,
            r#""parser" = 'flat_telemetry'"#,
            r#"instr("mqtt_parsing_log"."topic", 'gw-1/') > 0"#,
            r#""created_at" >= '2024-05-01"#,
            r#""created_at" <= '2024-05-02"#,
            r#""replayed_at" IS NULL"#,
        ] {
            assert!(sqlite.contains(part), "{part} in {sqlite}");
        }
        let postgres = given
            .select(DbBackend::Postgres, page())
            .build(DbBackend::Postgres)
            .to_string();
        assert!(
            postgres.contains(r#"strpos("mqtt_parsing_log"."topic", 'gw-1/') > 0"#),
            "{postgres}"
        );
        let replayed = filter("replayed=true").expect("valid");
        let text = replayed
            .select(DbBackend::Sqlite, page())
            .build(DbBackend::Sqlite)
            .to_string();
        assert!(text.contains(r#""replayed_at" IS NOT NULL"#), "{text}");
        assert!(!text.contains("instr"), "{text}");
    }

    #[test]
    fn bad_filters_name_their_parameter() {
        for (query, field) in [
            ("parser=", "parser"),
            ("topic=", "topic"),
            ("replayed=yes", "replayed"),
            ("from=today", "from"),
            ("from=2024-05-02T00:00:00Z&to=2024-05-01T00:00:00Z", "from"),
            ("site_id=x", "site_id"),
        ] {
            let (got, message) = filter(query).expect_err(query);
            assert_eq!(got, field, "{query}: {message}");
        }
    }

    #[test]
    fn a_nul_character_matches_nothing() {
        assert!(filter("topic=a%00b").expect("valid").matches_nothing());
        assert!(!filter("topic=a").expect("valid").matches_nothing());
    }

    #[test]
    fn a_replay_batch_is_bounded() {
        let batch = |query: &str| parse_query::<ReplayBatchQuery>(query).and_then(|q| q.page());
        assert_eq!(batch("").expect("default").limit, DEFAULT_REPLAY_ROWS);
        assert_eq!(batch("limit=5000").expect("lowered").limit, MAX_REPLAY_ROWS);
        assert_eq!(
            batch("limit=3&offset=4").expect("given"),
            Page {
                limit: 3,
                offset: 4
            }
        );
        assert!(batch("limit=0").is_err());
        assert!(batch("offset=-1").is_err());
    }
}
