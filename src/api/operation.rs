//! What the OpenAPI document says of one endpoint, built from the types its handler reads and
//! writes: the parameters of its query struct, the schema of its body type, the type of each
//! reply. The route table attaches one to every route; `openapi` assembles the document.

use axum::http::StatusCode;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::openapi::schema::ArrayBuilder;
use utoipa::openapi::{Ref, RefOr, Schema};
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorSchema;

/// What one reply carries.
#[derive(Clone)]
pub enum ReplyBody {
    Json(Box<RefOr<Schema>>),
    /// Not JSON: a page, a script, metrics text.
    Media(&'static str),
    Empty,
}

#[derive(Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub description: &'static str,
    pub body: ReplyBody,
}

#[derive(Clone, Default)]
pub struct Operation {
    pub summary: &'static str,
    /// Query parameters; path parameters come from the route's path.
    pub query: Vec<Parameter>,
    pub body: Option<RefOr<Schema>>,
    pub replies: Vec<Reply>,
    /// Every named schema the operation refers to, for the document's components.
    pub schemas: Vec<(String, RefOr<Schema>)>,
}

impl Operation {
    pub fn new(summary: &'static str) -> Operation {
        Operation {
            summary,
            ..Operation::default()
        }
    }

    /// The parameters of a query struct (see `api::query`).
    pub fn query<T: IntoParams>(mut self) -> Operation {
        self.query
            .extend(T::into_params(|| Some(ParameterIn::Query)));
        self
    }

    /// A JSON request body of type `T`.
    pub fn body<T: ToSchema>(mut self) -> Operation {
        self.body = Some(self.reference::<T>());
        self
    }

    /// A reply whose body is one `T`.
    pub fn json<T: ToSchema>(mut self, status: StatusCode, description: &'static str) -> Operation {
        let schema = self.reference::<T>();
        self.reply(status, description, ReplyBody::Json(Box::new(schema)))
    }

    /// A reply whose body is an array of `T`.
    pub fn json_list<T: ToSchema>(
        mut self,
        status: StatusCode,
        description: &'static str,
    ) -> Operation {
        let items = self.reference::<T>();
        let array = ArrayBuilder::new().items(items).build();
        self.reply(
            status,
            description,
            ReplyBody::Json(Box::new(RefOr::T(Schema::Array(array)))),
        )
    }

    /// A reply with an error body (`{"error": {"code", "message"}}`).
    pub fn error(mut self, status: StatusCode, description: &'static str) -> Operation {
        let schema = self.reference::<ErrorSchema>();
        self.reply(status, description, ReplyBody::Json(Box::new(schema)))
    }

    pub fn media(
        self,
        status: StatusCode,
        media_type: &'static str,
        description: &'static str,
    ) -> Operation {
        self.reply(status, description, ReplyBody::Media(media_type))
    }

    pub fn empty(self, status: StatusCode, description: &'static str) -> Operation {
        self.reply(status, description, ReplyBody::Empty)
    }

    fn reply(
        mut self,
        status: StatusCode,
        description: &'static str,
        body: ReplyBody,
    ) -> Operation {
        // A later reply for the same status replaces the earlier one.
        self.replies.retain(|reply| reply.status != status);
        self.replies.push(Reply {
            status,
            description,
            body,
        });
        self
    }

    /// Whether a reply for `status` is already described.
    pub fn replies_with(&self, status: StatusCode) -> bool {
        self.replies.iter().any(|reply| reply.status == status)
    }

    fn reference<T: ToSchema>(&mut self) -> RefOr<Schema> {
        let name = T::name().into_owned();
        self.schemas.push((name.clone(), T::schema()));
        T::schemas(&mut self.schemas);
        RefOr::Ref(Ref::from_schema_name(name))
    }
}
