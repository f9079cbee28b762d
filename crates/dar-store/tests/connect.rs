//! Opening stores and running migrations on both backends.

// Test code may unwrap and panic: a panic is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use dar_store::{Backend, Store, StoreError};

#[tokio::test]
async fn opens_in_memory_sqlite_and_migrates() -> Result<(), StoreError> {
    let store = Store::in_memory().await?;
    assert_eq!(store.backend(), Backend::Sqlite);
    Ok(())
}

#[tokio::test]
async fn opens_a_sqlite_file_twice_without_migrating_again() -> Result<(), StoreError> {
    let dir = std::env::temp_dir().join(format!("dar-store-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|_| StoreError::Unavailable)?;
    let url = format!("sqlite://{}", dir.join("t.db").display());
    Store::connect(&url).await?.close().await;
    let again = Store::connect(&url).await?;
    assert_eq!(again.backend(), Backend::Sqlite);
    again.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[tokio::test]
async fn open_existing_refuses_a_missing_sqlite_file_and_creates_none() -> Result<(), StoreError> {
    let dir = std::env::temp_dir().join(format!("dar-store-existing-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|_| StoreError::Unavailable)?;
    let file = dir.join("absent.db");
    let url = format!("sqlite://{}", file.display());
    assert!(matches!(
        Store::open_existing(&url).await,
        Err(StoreError::NoDatabaseFile)
    ));
    assert!(!file.exists());
    // Once `connect` made it, it opens.
    Store::connect(&url).await?.close().await;
    Store::open_existing(&url).await?.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[tokio::test]
async fn refuses_unknown_urls() {
    assert!(matches!(
        Store::connect("mysql://x").await,
        Err(StoreError::UnsupportedUrl)
    ));
}

#[tokio::test]
async fn opens_postgres_when_configured() -> Result<(), StoreError> {
    match dar_store::testing::postgres("opens_postgres_when_configured").await? {
        Some(store) => assert_eq!(store.backend(), Backend::Postgres),
        None => println!("DAR_TEST_POSTGRES_URL not set: PostgreSQL not tested"),
    }
    Ok(())
}
