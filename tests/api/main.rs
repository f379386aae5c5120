//! Black-box tests: real Herald over HTTP on a real database.

mod access;
mod bounces;
mod delivery;
mod events;
mod http;
mod identities;
mod oauth;
mod portal;
mod profiles;
mod queue;
mod storage;
mod submit;
mod test_send;
mod unsubscribe;
mod users;
