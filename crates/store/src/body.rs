//! How a message's bytes are kept in `message_body`. Text and HTML mail
//! shrinks to about half with LZ4, and every stored byte is written twice on
//! SQLite (the WAL, then the checkpoint) and read back by delivery, so a body
//! that shrinks by a tenth or more is stored compressed; anything else (an
//! already compressed attachment, a short note) is stored as it came.
//! PostgreSQL would compress the raw bytes itself (TOAST); it receives them
//! compressed already, and keeps them so.
//!
//! `compression` says which: NULL for raw bytes, `lz4` for an LZ4 block
//! with its decompressed size in front (little-endian u32).

use crate::StoreError;

/// The value of `message_body.compression` for an LZ4 block.
pub const LZ4: &str = "lz4";

/// Bodies shorter than this are stored raw: there is little to gain.
const MIN_COMPRESSED: usize = 512;

/// A stored size claiming more than this is corrupt (no accepted message
/// comes near it), and is refused before anything is allocated.
const MAX_BODY: usize = 512 * 1024 * 1024;

/// A message's bytes as they are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    pub bytes: Vec<u8>,
    /// `None` for raw bytes, [`LZ4`] for an LZ4 block.
    pub compression: Option<&'static str>,
}

/// The bytes to store for `mime`, and how they are encoded. Compressing
/// costs about as much CPU as parsing the submission, so callers do it
/// where the work spreads over cores (the request handlers), not in the one
/// task that writes.
pub fn pack(mime: Vec<u8>) -> Packed {
    if mime.len() >= MIN_COMPRESSED {
        let packed = lz4_flex::block::compress_prepend_size(&mime);
        if packed.len() <= mime.len() - mime.len() / 10 {
            return Packed {
                bytes: packed,
                compression: Some(LZ4),
            };
        }
    }
    Packed {
        bytes: mime,
        compression: None,
    }
}

/// The message's bytes from what was stored.
pub fn unpack(stored: Vec<u8>, compression: Option<&str>) -> Result<Vec<u8>, StoreError> {
    match compression {
        None => Ok(stored),
        Some(LZ4) => {
            let size = stored
                .first_chunk::<4>()
                .map(|b| u32::from_le_bytes(*b) as usize)
                .ok_or_else(|| {
                    StoreError::Corrupt("an LZ4 message body without its size".into())
                })?;
            if size > MAX_BODY {
                return Err(StoreError::Corrupt(format!(
                    "an LZ4 message body claims {size} bytes"
                )));
            }
            lz4_flex::block::decompress_size_prepended(&stored)
                .map_err(|e| StoreError::Corrupt(format!("an LZ4 message body: {e}")))
        }
        Some(other) => Err(StoreError::Corrupt(format!(
            "a message body compressed as {other:?}, which this Herald does not know"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter() -> Vec<u8> {
        let mut m = b"From: office@school.example\r\nSubject: Report card\r\n\r\n".to_vec();
        for i in 0..60 {
            m.extend_from_slice(
                format!("Line {i}: the term's marks and the teacher's remarks.\r\n").as_bytes(),
            );
        }
        m
    }

    #[test]
    fn text_is_stored_compressed_and_read_back_whole() {
        let mime = letter();
        let p = pack(mime.clone());
        assert_eq!(p.compression, Some(LZ4));
        assert!(
            p.bytes.len() < mime.len() / 2,
            "{} of {}",
            p.bytes.len(),
            mime.len()
        );
        assert_eq!(unpack(p.bytes, p.compression).unwrap(), mime);
    }

    #[test]
    fn short_or_incompressible_bodies_are_stored_as_they_came() {
        let short = b"Subject: hi\r\n\r\nhello\r\n".to_vec();
        assert_eq!(
            pack(short.clone()),
            Packed {
                bytes: short,
                compression: None
            }
        );
        // Bytes with no repetition (as in a zip attachment) do not shrink.
        let mut x: u32 = 2463534242;
        let noise: Vec<u8> = (0..8192)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        let p = pack(noise.clone());
        assert_eq!(p.compression, None);
        assert_eq!(unpack(p.bytes, p.compression).unwrap(), noise);
    }

    #[test]
    fn damaged_bodies_are_refused_not_trusted() {
        let Packed {
            bytes: mut stored,
            compression: how,
        } = pack(letter());
        // A size far beyond any message: refused before allocating it.
        stored[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(unpack(stored, how), Err(StoreError::Corrupt(_))));
        let Packed {
            bytes: mut stored,
            compression: how,
        } = pack(letter());
        stored.truncate(stored.len() / 2);
        assert!(matches!(unpack(stored, how), Err(StoreError::Corrupt(_))));
        assert!(matches!(
            unpack(vec![1, 2], Some(LZ4)),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            unpack(vec![1, 2], Some("zstd")),
            Err(StoreError::Corrupt(_))
        ));
    }
}
