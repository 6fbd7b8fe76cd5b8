//! `/api/sites`: the monitored sites. Deleting one removes everything below it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, Order, PaginatorTrait,
    QueryFilter, Set,
};
use serde::{Deserialize, Serialize};
use utoipa::openapi::Object;
use utoipa::ToSchema;

use super::error::ApiError;
use super::extract::{ApiJson, Patch, PathId};
use super::list::Listing;
use super::schema;
use crate::entity::site;
use crate::state::AppState;

const MAX_NAME_CHARS: usize = 200;
const MAX_SLUG_CHARS: usize = 64;
const SLUG_PATTERN: &str = "^[a-z0-9-]+$";

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Site)]
pub struct SiteResponse {
    pub id: i32,
    pub name: String,
    #[schema(schema_with = slug_schema)]
    pub slug: String,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
}

impl From<site::Model> for SiteResponse {
    fn from(model: site::Model) -> SiteResponse {
        SiteResponse {
            id: model.id,
            name: model.name,
            slug: model.slug,
            is_active: model.is_active,
            created_at: model.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SiteCreate)]
pub struct CreateSite {
    #[schema(schema_with = name_schema)]
    name: String,
    #[schema(schema_with = slug_schema)]
    slug: String,
    /// Visibility; an inactive site's connection does not run.
    #[serde(default = "default_true")]
    #[schema(default = true)]
    is_active: bool,
}

fn default_true() -> bool {
    true
}

/// Only the fields given change; none of them may be `null`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SitePatch)]
pub struct UpdateSite {
    #[serde(default)]
    #[schema(schema_with = name_schema)]
    name: Patch<String>,
    #[serde(default)]
    #[schema(schema_with = slug_schema)]
    slug: Patch<String>,
    #[serde(default)]
    #[schema(value_type = bool)]
    is_active: Patch<bool>,
}

fn name_schema() -> Object {
    schema::string()
        .min_length(Some(1))
        .max_length(Some(MAX_NAME_CHARS))
        .pattern(Some(schema::not_blank_pattern()))
        .description(Some(
            "Not blank; stored without leading and trailing whitespace.",
        ))
        .build()
}

fn slug_schema() -> Object {
    schema::string()
        .min_length(Some(1))
        .max_length(Some(MAX_SLUG_CHARS))
        .pattern(Some(SLUG_PATTERN))
        .description(Some(
            "Lowercase letters, digits and '-'; unique among sites.",
        ))
        .build()
}

/// The length counts what the caller sent, surrounding whitespace included, as the document's
/// `maxLength` does; what is stored is trimmed.
pub fn validate_name(name: &str) -> Result<String, ApiError> {
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::validation(
            "name",
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    let name = name.trim();
    if name.is_empty() {
        return Err(ApiError::validation("name", "must not be empty"));
    }
    Ok(name.to_string())
}

/// Slugs appear in URLs, client ids and metric labels, hence the narrow alphabet.
pub fn validate_slug(slug: &str) -> Result<String, ApiError> {
    if slug.is_empty() || slug.len() > MAX_SLUG_CHARS {
        return Err(ApiError::validation(
            "slug",
            format!("must be 1 to {MAX_SLUG_CHARS} characters long"),
        ));
    }
    if !slug
        .bytes()
        .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-')
    {
        return Err(ApiError::validation(
            "slug",
            format!("may contain only lowercase letters, digits and '-' (got '{slug}')"),
        ));
    }
    Ok(slug.to_string())
}

pub async fn find(state: &AppState, id: i32) -> Result<site::Model, ApiError> {
    site::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("site {id} not found")))
}

async fn ensure_slug_free(
    state: &AppState,
    slug: &str,
    except: Option<i32>,
) -> Result<(), ApiError> {
    let mut query = site::Entity::find().filter(site::Column::Slug.eq(slug));
    if let Some(id) = except {
        query = query.filter(site::Column::Id.ne(id));
    }
    if query.count(&state.db).await? > 0 {
        return Err(slug_taken(slug));
    }
    Ok(())
}

fn slug_taken(slug: &str) -> ApiError {
    ApiError::conflict(format!("slug '{slug}' is already used by another site"))
}

/// `GET /api/sites`: by id.
pub struct SiteList;

impl Listing for SiteList {
    type Entity = site::Entity;
    type Item = SiteResponse;
    const SITE_COLUMN: Option<site::Column> = None;
    fn order() -> Vec<(site::Column, Order)> {
        vec![(site::Column::Id, Order::Asc)]
    }
    fn item(row: site::Model, _: &AppState) -> SiteResponse {
        row.into()
    }
}

pub async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateSite>,
) -> Result<(StatusCode, Json<SiteResponse>), ApiError> {
    let name = validate_name(&body.name)?;
    let slug = validate_slug(&body.slug)?;
    ensure_slug_free(&state, &slug, None).await?;
    let row = site::ActiveModel {
        name: Set(name),
        slug: Set(slug.clone()),
        is_active: Set(body.is_active),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(&state.db)
    .await
    .map_err(|error| ApiError::database(error, || slug_taken(&slug).to_string()))?;
    // A new site has no connection yet, so nothing can start; no wake needed.
    Ok((StatusCode::CREATED, Json(row.into())))
}

pub async fn get(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> Result<Json<SiteResponse>, ApiError> {
    Ok(Json(find(&state, id).await?.into()))
}

pub async fn update(
    State(state): State<AppState>,
    PathId(id): PathId,
    ApiJson(body): ApiJson<UpdateSite>,
) -> Result<Json<SiteResponse>, ApiError> {
    let name = body
        .name
        .required("name")?
        .map(|name| validate_name(&name))
        .transpose()?;
    let slug = body
        .slug
        .required("slug")?
        .map(|slug| validate_slug(&slug))
        .transpose()?;
    let is_active = body.is_active.required("is_active")?;
    let existing = find(&state, id).await?;
    if let Some(slug) = &slug {
        ensure_slug_free(&state, slug, Some(id)).await?;
    }
    let activity_changes = is_active.is_some_and(|active| active != existing.is_active);
    let mut row = existing.into_active_model();
    if let Some(name) = name {
        row.name = Set(name);
    }
    if let Some(slug) = &slug {
        row.slug = Set(slug.clone());
    }
    if let Some(is_active) = is_active {
        row.is_active = Set(is_active);
    }
    let updated = row.update(&state.db).await.map_err(|error| {
        ApiError::database(error, || {
            slug_taken(slug.as_deref().unwrap_or_default()).to_string()
        })
    })?;
    if activity_changes {
        // An inactive site's connection must stop (and start again) now, not at the next tick.
        state.supervisor.wake();
    }
    Ok(Json(updated.into()))
}

pub async fn delete(
    State(state): State<AppState>,
    PathId(id): PathId,
) -> Result<StatusCode, ApiError> {
    let result = site::Entity::delete_by_id(id).exec(&state.db).await?;
    if result.rows_affected == 0 {
        return Err(ApiError::not_found(format!("site {id} not found")));
    }
    // The connection went with the site (ON DELETE CASCADE); its client must stop.
    state.supervisor.wake();
    Ok(StatusCode::NO_CONTENT)
}
