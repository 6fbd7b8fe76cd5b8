//! The one list endpoint behind every resource that lists rows: narrowed to one site where the
//! rows belong to a site, in a fixed order, a page at a time. Each resource only says which
//! table, which column ties a row to its site, the order, and how a row is shown.

use axum::extract::{RawQuery, State};
use axum::Json;
use sea_orm::{ColumnTrait, EntityTrait, Order, QueryFilter, QueryOrder, QuerySelect, Select};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::ApiError;
use super::pagination::{Page, PageQuery};
use super::query::{parse_query, QueryId};
use crate::state::AppState;

type Column<L> = <<L as Listing>::Entity as EntityTrait>::Column;
type Model<L> = <<L as Listing>::Entity as EntityTrait>::Model;

/// What a list endpoint lists.
pub trait Listing {
    type Entity: EntityTrait;
    /// One row as the API shows it.
    type Item: Serialize + ToSchema;
    /// The column that ties a row to its site, for lists that `?site_id=` narrows.
    const SITE_COLUMN: Option<Column<Self>>;
    /// Sort keys, most significant first; the last is unique so pages neither overlap nor skip.
    fn order() -> Vec<(Column<Self>, Order)>;
    fn item(row: Model<Self>, state: &AppState) -> Self::Item;
}

/// `?site_id=`, read only by lists whose rows belong to a site.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SiteQuery {
    /// Only rows of this site.
    #[param(value_type = i32)]
    #[serde(default)]
    pub site_id: Option<QueryId>,
}

/// The statement for one page of `L`, narrowed to a site if one is given.
pub fn select<L: Listing>(site_id: Option<i32>, page: Page) -> Select<L::Entity> {
    let mut query = L::Entity::find();
    if let (Some(column), Some(site_id)) = (L::SITE_COLUMN, site_id) {
        query = query.filter(column.eq(site_id));
    }
    for (column, order) in L::order() {
        query = query.order_by(column, order);
    }
    query.limit(page.limit).offset(page.offset)
}

/// `GET` of a list: the page parameters always, `site_id` where the rows belong to a site; any
/// other parameter is ignored.
pub async fn list<L: Listing>(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<L::Item>>, ApiError> {
    let query = query.unwrap_or_default();
    let page = parse_query::<PageQuery>(&query)?.page()?;
    let site_id = match L::SITE_COLUMN {
        Some(_) => parse_query::<SiteQuery>(&query)?.site_id.map(|id| id.0),
        None => None,
    };
    let rows = select::<L>(site_id, page).all(&state.db).await?;
    Ok(Json(
        rows.into_iter().map(|row| L::item(row, &state)).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use sea_orm::{DbBackend, QueryTrait};

    use super::*;
    use crate::entity::{mqtt_parsing_log, site};

    struct Sites;

    impl Listing for Sites {
        type Entity = site::Entity;
        type Item = String;
        const SITE_COLUMN: Option<site::Column> = None;
        fn order() -> Vec<(site::Column, Order)> {
            vec![(site::Column::Id, Order::Asc)]
        }
        fn item(row: site::Model, _: &AppState) -> String {
            row.slug
        }
    }

    struct Logs;

    impl Listing for Logs {
        type Entity = mqtt_parsing_log::Entity;
        type Item = String;
        const SITE_COLUMN: Option<mqtt_parsing_log::Column> =
            Some(mqtt_parsing_log::Column::SiteId);
        fn order() -> Vec<(mqtt_parsing_log::Column, Order)> {
            vec![
                (mqtt_parsing_log::Column::CreatedAt, Order::Desc),
                (mqtt_parsing_log::Column::Id, Order::Desc),
            ]
        }
        fn item(row: mqtt_parsing_log::Model, _: &AppState) -> String {
            row.topic
        }
    }

    fn sql<L: Listing>(site_id: Option<i32>, limit: u64, offset: u64) -> String {
        select::<L>(site_id, Page { limit, offset })
            .build(DbBackend::Sqlite)
            .to_string()
    }

    #[test]
    fn a_page_is_ordered_then_cut() {
        let text = sql::<Sites>(None, 10, 20);
        assert!(
            text.ends_with(r#"ORDER BY "site"."id" ASC LIMIT 10 OFFSET 20"#),
            "{text}"
        );
        assert!(!text.contains("WHERE"), "{text}");
    }

    #[test]
    fn a_site_narrows_only_lists_that_belong_to_sites() {
        assert!(!sql::<Sites>(Some(3), 10, 0).contains("WHERE"));
        let text = sql::<Logs>(Some(3), 10, 0);
        assert!(
            text.contains(r#"WHERE "mqtt_parsing_log"."site_id" = 3 ORDER BY "mqtt_parsing_log"."created_at" DESC, "mqtt_parsing_log"."id" DESC"#),
            "{text}"
        );
        assert!(!sql::<Logs>(None, 10, 0).contains("WHERE"));
    }
}
