//! Black-box tests: real Herald over HTTP on a real database.

mod access;
mod http;
mod portal;
mod storage;
mod users;
