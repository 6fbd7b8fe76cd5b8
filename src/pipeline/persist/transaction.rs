//! The transaction a batch is stored in: on PostgreSQL a sqlx transaction from sea-orm's own
//! pool, so the readings' arrays can be bound as they are; elsewhere sea-orm's transaction.
//!
//! Through sea-orm a bound array becomes one `sea_query::Value` per element, is cloned when the
//! statement runs and is converted back element by element: about a tenth of the service's work
//! per message. sea-orm keeps the sqlx connection inside its transaction to itself, so on
//! PostgreSQL the whole transaction is sqlx's, and sea-orm's statements run in it with the same
//! value binding sea-orm uses (`sea_query_sqlx`).

use sea_orm::sqlx::{self, Postgres};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult,
    QueryResult, RuntimeErr, Statement, TransactionTrait, Values,
};
use sea_query_sqlx::SqlxValues;
use std::sync::Arc;
use tokio::sync::Mutex;

/// A PostgreSQL transaction that statements of `&self` methods can share.
pub type PostgresTransaction = Mutex<sqlx::Transaction<'static, Postgres>>;

/// One open transaction; dropped without `commit`, it rolls back.
pub enum BatchTransaction {
    Postgres(PostgresTransaction),
    SeaOrm(DatabaseTransaction),
}

impl BatchTransaction {
    pub async fn begin(db: &DatabaseConnection) -> Result<Self, DbErr> {
        if db.get_database_backend() == DbBackend::Postgres {
            let transaction = db
                .get_postgres_connection_pool()
                .begin()
                .await
                .map_err(|error| DbErr::Conn(RuntimeErr::SqlxError(Arc::new(error))))?;
            Ok(Self::Postgres(Mutex::new(transaction)))
        } else {
            Ok(Self::SeaOrm(db.begin().await?))
        }
    }

    pub async fn commit(self) -> Result<(), DbErr> {
        match self {
            Self::Postgres(transaction) => transaction
                .into_inner()
                .commit()
                .await
                .map_err(execution_error),
            Self::SeaOrm(transaction) => transaction.commit().await,
        }
    }

    /// The PostgreSQL transaction, for statements that bind their values through sqlx.
    pub fn postgres(&self) -> Option<&PostgresTransaction> {
        match self {
            Self::Postgres(transaction) => Some(transaction),
            Self::SeaOrm(_) => None,
        }
    }
}

/// As sea-orm reports a failed statement, so `DbErr::sql_err` reads it the same way.
pub fn execution_error(error: sqlx::Error) -> DbErr {
    DbErr::Exec(RuntimeErr::SqlxError(Arc::new(error)))
}

fn query_error(error: sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(Arc::new(error)))
}

/// A sea-orm statement as a sqlx query, its values bound as sea-orm binds them.
fn sqlx_query(statement: Statement) -> sqlx::query::Query<'static, Postgres, SqlxValues> {
    let values = statement.values.unwrap_or(Values(Vec::new()));
    sqlx::query_with(sqlx::AssertSqlSafe(statement.sql), SqlxValues(values))
}

#[async_trait::async_trait]
impl ConnectionTrait for BatchTransaction {
    fn get_database_backend(&self) -> DbBackend {
        match self {
            Self::Postgres(_) => DbBackend::Postgres,
            Self::SeaOrm(transaction) => transaction.get_database_backend(),
        }
    }

    async fn execute_raw(&self, statement: Statement) -> Result<ExecResult, DbErr> {
        match self {
            Self::Postgres(transaction) => {
                let mut connection = transaction.lock().await;
                sqlx_query(statement)
                    .execute(&mut **connection)
                    .await
                    .map(Into::into)
                    .map_err(execution_error)
            }
            Self::SeaOrm(transaction) => transaction.execute_raw(statement).await,
        }
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        match self {
            Self::Postgres(transaction) => {
                let mut connection = transaction.lock().await;
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                    .execute(&mut **connection)
                    .await
                    .map(Into::into)
                    .map_err(execution_error)
            }
            Self::SeaOrm(transaction) => transaction.execute_unprepared(sql).await,
        }
    }

    async fn query_one_raw(&self, statement: Statement) -> Result<Option<QueryResult>, DbErr> {
        match self {
            Self::Postgres(transaction) => {
                let mut connection = transaction.lock().await;
                sqlx_query(statement)
                    .fetch_optional(&mut **connection)
                    .await
                    .map(|row| row.map(Into::into))
                    .map_err(query_error)
            }
            Self::SeaOrm(transaction) => transaction.query_one_raw(statement).await,
        }
    }

    async fn query_all_raw(&self, statement: Statement) -> Result<Vec<QueryResult>, DbErr> {
        match self {
            Self::Postgres(transaction) => {
                let mut connection = transaction.lock().await;
                sqlx_query(statement)
                    .fetch_all(&mut **connection)
                    .await
                    .map(|rows| rows.into_iter().map(Into::into).collect())
                    .map_err(query_error)
            }
            Self::SeaOrm(transaction) => transaction.query_all_raw(statement).await,
        }
    }
}
