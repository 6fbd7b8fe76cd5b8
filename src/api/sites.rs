//! `/api/sites`: the monitored sites. Deleting one removes everything below it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, Set,
};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::extract::{ApiJson, Patch, PathId, QueryParams};
use super::pagination::Page;
use crate::entity::site;
use crate::state::AppState;

const MAX_NAME_CHARS: usize = 200;
const MAX_SLUG_CHARS: usize = 64;

#[derive(Debug, Serialize)]
pub struct SiteResponse {
    pub id: i32,
    pub name: String,
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

#[derive(Debug, Deserialize)]
pub struct CreateSite {
    name: String,
    slug: String,
    #[serde(default = "default_true")]
    is_active: bool,
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize)]
pub struct UpdateSite {
    #[serde(default)]
    name: Patch<String>,
    #[serde(default)]
    slug: Patch<String>,
    #[serde(default)]
    is_active: Patch<bool>,
}

pub fn validate_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ApiError::validation("name", "must not be empty"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::validation(
            "name",
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
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

pub async fn list(
    State(state): State<AppState>,
    params: QueryParams,
) -> Result<Json<Vec<SiteResponse>>, ApiError> {
    let page = Page::from_params(&params)?;
    let rows = site::Entity::find()
        .order_by_asc(site::Column::Id)
        .limit(page.limit)
        .offset(page.offset)
        .all(&state.db)
        .await?;
    Ok(Json(rows.into_iter().map(SiteResponse::from).collect()))
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
