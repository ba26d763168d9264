//! The pgoutput logical replication protocol (version 1), decoded: the messages PostgreSQL's
//! built-in output plugin writes for each change of a published table (`Begin`, `Relation`,
//! `Insert`, `Update`, `Delete`, `Truncate`, `Commit`), with tuples in text form.

/// One column of a tuple.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Datum {
    /// `NULL`.
    Null,
    /// A TOASTed value that did not change (updates; the old tuple has it with REPLICA
    /// IDENTITY FULL).
    Unchanged,
    /// The value in its text form.
    Text(String),
}

/// One column of a relation message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelationColumn {
    /// Part of the replica identity.
    pub key: bool,
    /// Its name.
    pub name: String,
    /// Its type's oid.
    pub type_oid: u32,
    /// Its type modifier.
    pub typmod: i32,
}

/// A decoded pgoutput message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A transaction starts: its commit LSN, commit time (µs since 2000-01-01) and xid.
    Begin {
        /// The LSN of its commit record.
        final_lsn: u64,
        /// Commit time, µs since 2000-01-01.
        commit_ts: i64,
        /// The transaction id.
        xid: u32,
    },
    /// The transaction ends.
    Commit {
        /// The LSN of its commit record.
        commit_lsn: u64,
        /// The LSN after it.
        end_lsn: u64,
        /// Commit time, µs since 2000-01-01.
        commit_ts: i64,
    },
    /// Describes a relation before its first change in a decoding session.
    Relation {
        /// Its oid.
        id: u32,
        /// Schema name.
        namespace: String,
        /// Table name.
        name: String,
        /// `d` default, `n` nothing, `f` full, `i` index.
        replica_identity: u8,
        /// Its columns.
        columns: Vec<RelationColumn>,
    },
    /// A row was inserted.
    Insert {
        /// The relation.
        relation: u32,
        /// The new row.
        new: Vec<Datum>,
    },
    /// A row was updated.
    Update {
        /// The relation.
        relation: u32,
        /// The old row (REPLICA IDENTITY FULL) or its key (the key changed), if sent.
        old: Option<Vec<Datum>>,
        /// The new row.
        new: Vec<Datum>,
    },
    /// A row was deleted.
    Delete {
        /// The relation.
        relation: u32,
        /// The old row (REPLICA IDENTITY FULL) or its key.
        old: Vec<Datum>,
    },
    /// Tables were truncated.
    Truncate {
        /// Their oids.
        relations: Vec<u32>,
    },
    /// Anything else (types, origins, logical messages): not needed here.
    Other(u8),
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at + n;
        let s = self
            .data
            .get(self.at..end)
            .ok_or_else(|| format!("pgoutput message cut short at byte {}", self.at))?;
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn i16(&mut self) -> Result<i16, String> {
        Ok(i16::from_be_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn i32(&mut self) -> Result<i32, String> {
        Ok(i32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn cstr(&mut self) -> Result<String, String> {
        let rest = &self.data[self.at..];
        let n = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or("pgoutput string without its terminator")?;
        let s = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.at += n + 1;
        Ok(s)
    }
    fn tuple(&mut self) -> Result<Vec<Datum>, String> {
        let n = self.i16()?;
        (0..n)
            .map(|_| {
                Ok(match self.u8()? {
                    b'n' => Datum::Null,
                    b'u' => Datum::Unchanged,
                    b't' => {
                        let len = self.i32()? as usize;
                        Datum::Text(String::from_utf8_lossy(self.take(len)?).into_owned())
                    }
                    other => return Err(format!("unknown tuple column kind {:?}", other as char)),
                })
            })
            .collect()
    }
}

/// Decodes one pgoutput message.
pub fn decode(data: &[u8]) -> Result<Message, String> {
    let mut r = Reader { data, at: 0 };
    let kind = r.u8()?;
    Ok(match kind {
        b'B' => Message::Begin {
            final_lsn: r.i64()? as u64,
            commit_ts: r.i64()?,
            xid: r.i32()? as u32,
        },
        b'C' => {
            let _flags = r.u8()?;
            Message::Commit {
                commit_lsn: r.i64()? as u64,
                end_lsn: r.i64()? as u64,
                commit_ts: r.i64()?,
            }
        }
        b'R' => {
            let id = r.i32()? as u32;
            let namespace = r.cstr()?;
            let name = r.cstr()?;
            let replica_identity = r.u8()?;
            let n = r.i16()?;
            let columns = (0..n)
                .map(|_| {
                    Ok(RelationColumn {
                        key: r.u8()? & 1 == 1,
                        name: r.cstr()?,
                        type_oid: r.i32()? as u32,
                        typmod: r.i32()?,
                    })
                })
                .collect::<Result<_, String>>()?;
            Message::Relation {
                id,
                namespace,
                name,
                replica_identity,
                columns,
            }
        }
        b'I' => {
            let relation = r.i32()? as u32;
            if r.u8()? != b'N' {
                return Err("insert without its new tuple".into());
            }
            Message::Insert {
                relation,
                new: r.tuple()?,
            }
        }
        b'U' => {
            let relation = r.i32()? as u32;
            let mut old = None;
            let mut tag = r.u8()?;
            if tag == b'K' || tag == b'O' {
                old = Some(r.tuple()?);
                tag = r.u8()?;
            }
            if tag != b'N' {
                return Err("update without its new tuple".into());
            }
            Message::Update {
                relation,
                old,
                new: r.tuple()?,
            }
        }
        b'D' => {
            let relation = r.i32()? as u32;
            let tag = r.u8()?;
            if tag != b'K' && tag != b'O' {
                return Err("delete without its old tuple".into());
            }
            Message::Delete {
                relation,
                old: r.tuple()?,
            }
        }
        b'T' => {
            let n = r.i32()?;
            let _options = r.u8()?;
            Message::Truncate {
                relations: (0..n)
                    .map(|_| r.i32().map(|v| v as u32))
                    .collect::<Result<_, _>>()?,
            }
        }
        other => Message::Other(other),
    })
}

/// Parses an LSN's text form (`16/B374D848`).
pub fn parse_lsn(text: &str) -> Result<u64, String> {
    let (hi, lo) = text
        .split_once('/')
        .ok_or_else(|| format!("`{text}` is not an LSN"))?;
    let hi = u64::from_str_radix(hi, 16).map_err(|_| format!("`{text}` is not an LSN"))?;
    let lo = u64::from_str_radix(lo, 16).map_err(|_| format!("`{text}` is not an LSN"))?;
    Ok((hi << 32) | lo)
}

/// An LSN's text form.
pub fn format_lsn(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_decode() {
        let mut b = vec![b'U'];
        b.extend(16384u32.to_be_bytes());
        b.push(b'O');
        b.extend(2i16.to_be_bytes());
        b.push(b't');
        b.extend(1i32.to_be_bytes());
        b.push(b'1');
        b.push(b'n');
        b.push(b'N');
        b.extend(2i16.to_be_bytes());
        b.push(b't');
        b.extend(1i32.to_be_bytes());
        b.push(b'2');
        b.push(b'u');
        assert_eq!(
            decode(&b),
            Ok(Message::Update {
                relation: 16384,
                old: Some(vec![Datum::Text("1".into()), Datum::Null]),
                new: vec![Datum::Text("2".into()), Datum::Unchanged],
            })
        );
        assert!(decode(&b[..b.len() - 3]).is_err());
    }

    #[test]
    fn lsns_round_trip() {
        assert_eq!(parse_lsn("16/B374D848"), Ok(0x16_B374_D848));
        assert_eq!(format_lsn(0x16_B374_D848), "16/B374D848");
        assert!(parse_lsn("nope").is_err());
    }
}
