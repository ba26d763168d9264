//! The statement front end: [`parse_script`] and the statements it returns.
//!
//! A script is tokenized once (with positions), so every error names its line and column in
//! the script. Statements are separated by `;`. The Flink-only statements (`CREATE TABLE`,
//! `CREATE FUNCTION … AS 'class'`, `SET`) are parsed here with sqlparser's public [`Parser`]
//! primitives, because sqlparser's AST has no room for a watermark or a computed column;
//! everything else (`INSERT`, `SELECT`, `CREATE VIEW`, …) is sqlparser's own
//! `parse_statement` with [`FlinkDialect`].

use sqlparser::ast::{DataType, Expr, Ident, ObjectName, Statement};
use sqlparser::keywords::Keyword;
use sqlparser::parser::{IsOptional, Parser, ParserError};
use sqlparser::tokenizer::{Location, Span, Token, TokenWithSpan, Tokenizer};
use streamcore::row::sql_string;

use crate::dialect::FlinkDialect;

/// One statement of a Flink SQL script.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "a script holds a few statements, parsed once; unboxed ASTs can be matched on"
)]
pub enum FlinkStatement {
    /// `CREATE [TEMPORARY] TABLE`, with Flink's column kinds, watermark and options.
    CreateTable(CreateTable),
    /// `CREATE [TEMPORARY [SYSTEM]] FUNCTION [IF NOT EXISTS] name AS 'class' [LANGUAGE l]`.
    CreateFunction {
        /// The function's name.
        name: ObjectName,
        /// The implementing class (`'com.example.MyUdf'`).
        class: String,
        /// `TEMPORARY` was given.
        temporary: bool,
        /// `SYSTEM` was given (a temporary system function: no catalog or database).
        system: bool,
        /// `IF NOT EXISTS` was given.
        if_not_exists: bool,
        /// The `LANGUAGE` clause (`JAVA`, `SCALA`, `PYTHON`), if any.
        language: Option<Ident>,
    },
    /// `SET 'key' = 'value'` (a session option); quotes are removed.
    Set {
        /// The option's name.
        key: String,
        /// The option's value.
        value: String,
    },
    /// `BEGIN STATEMENT SET` (or `EXECUTE STATEMENT SET BEGIN`): the `INSERT`s up to `END` run
    /// as one job.
    BeginStatementSet,
    /// The `END` of a statement set.
    EndStatementSet,
    /// `CREATE VIEW`, as sqlparser parsed it, with its text as written (`SHOW CREATE VIEW`
    /// prints that: the parsed query holds the dialect's rewrites).
    CreateView {
        /// The statement (a [`Statement::CreateView`]).
        statement: Statement,
        /// Its text in the script.
        source: String,
    },
    /// `SHOW [USER] FUNCTIONS [[NOT] LIKE | ILIKE 'pattern']`.
    ShowFunctions {
        /// `USER`: the session's functions only, not the built-in ones.
        user: bool,
        /// The filter: the pattern (SQL's `%` and `_`), `ILIKE` (case-insensitive) and `NOT`.
        like: Option<LikeFilter>,
    },
    /// Any other statement, as sqlparser parsed it with [`FlinkDialect`].
    Sql(Statement),
}

/// A `SHOW … [NOT] LIKE | ILIKE 'pattern'` filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LikeFilter {
    /// The pattern.
    pub pattern: String,
    /// `ILIKE`: case-insensitive.
    pub case_insensitive: bool,
    /// `NOT`: the names that do not match.
    pub negated: bool,
}

/// Flink's `CREATE TABLE`.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateTable {
    /// The table's name.
    pub name: ObjectName,
    /// `TEMPORARY` was given.
    pub temporary: bool,
    /// `IF NOT EXISTS` was given.
    pub if_not_exists: bool,
    /// The columns, in declaration order.
    pub columns: Vec<Column>,
    /// The `WATERMARK FOR column AS expr` clause, if any.
    pub watermark: Option<Watermark>,
    /// The columns of `PRIMARY KEY (…) NOT ENFORCED` (table or column form); empty if none.
    pub primary_key: Vec<Ident>,
    /// The columns of `PARTITIONED BY (…)`; empty if none.
    pub partitioned_by: Vec<Ident>,
    /// The table's `COMMENT`, if any.
    pub comment: Option<String>,
    /// The `WITH ('key' = 'value', …)` options, in the order written.
    pub options: Vec<(String, String)>,
}

impl CreateTable {
    /// The value of option `key`, if it was given.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Option keys whose values `SHOW CREATE TABLE` does not print.
fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    // Where a secret is: an environment variable's name or a file's path is not one.
    if key.ends_with("-env") || key.ends_with("-file") || key.ends_with(".location") {
        return false;
    }
    const SECRET: [&str; 13] = [
        "password",
        "secret",
        "token",
        "apikey",
        "api-key",
        "credential",
        "jaas.config",
        "oauthbearer.config",
        "ssl.key",
        "private",
        "auth-params",
        "basic-auth",
        "account.key",
    ];
    SECRET.iter().any(|s| key.contains(s)) || key.starts_with("headers.")
}

/// `value` with the password of a URL's user information (`scheme://user:password@host`)
/// masked.
fn without_url_password(value: &str) -> String {
    let Some(scheme_end) = value.find("://") else {
        return value.to_string();
    };
    let rest = &value[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return value.to_string();
    };
    match rest[..at].find(':') {
        Some(colon) => format!(
            "{}{}:******{}",
            &value[..scheme_end + 3],
            &rest[..colon],
            &rest[at..]
        ),
        None => value.to_string(),
    }
}

/// `name` between backquotes (Flink's quoting), inner backquotes doubled.
pub(crate) fn quoted(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// `ty` as Flink writes it: `ROW<name type, …>` (sqlparser prints a row type as `STRUCT`).
fn flink_type(ty: &DataType) -> String {
    match ty {
        DataType::Struct(fields, _) => {
            let fields: Vec<String> = fields
                .iter()
                .map(|f| match &f.field_name {
                    Some(n) => format!("{} {}", quoted(&n.value), flink_type(&f.field_type)),
                    None => flink_type(&f.field_type),
                })
                .collect();
            format!("ROW<{}>", fields.join(", "))
        }
        other => other.to_string(),
    }
}

impl std::fmt::Display for CreateTable {
    /// The statement as `SHOW CREATE TABLE` prints it: Flink's form, one column per line,
    /// identifiers in backquotes, secrets (`password`, `secret`, JAAS configurations) masked.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name: Vec<String> = self
            .name
            .0
            .iter()
            .map(|p| {
                p.as_ident()
                    .map_or_else(|| p.to_string(), |i| quoted(&i.value))
            })
            .collect();
        writeln!(
            f,
            "CREATE {}TABLE {} (",
            if self.temporary { "TEMPORARY " } else { "" },
            name.join(".")
        )?;
        let mut lines: Vec<String> = self
            .columns
            .iter()
            .map(|c| {
                let mut line = format!("  {} ", quoted(&c.name.value));
                match &c.kind {
                    ColumnKind::Physical { data_type } => {
                        line += &flink_type(data_type);
                        if c.not_null {
                            line += " NOT NULL";
                        }
                    }
                    ColumnKind::Computed { expr } => line += &format!("AS {expr}"),
                    ColumnKind::Metadata {
                        data_type,
                        key,
                        is_virtual,
                    } => {
                        line += &flink_type(data_type);
                        if c.not_null {
                            line += " NOT NULL";
                        }
                        line += " METADATA";
                        if let Some(k) = key {
                            line += &format!(" FROM {}", sql_string(k));
                        }
                        if *is_virtual {
                            line += " VIRTUAL";
                        }
                    }
                }
                if let Some(comment) = &c.comment {
                    line += &format!(" COMMENT {}", sql_string(comment));
                }
                line
            })
            .collect();
        if let Some(w) = &self.watermark {
            lines.push(format!(
                "  WATERMARK FOR {} AS {}",
                quoted(&w.column.value),
                w.expr
            ));
        }
        if !self.primary_key.is_empty() {
            let key: Vec<String> = self.primary_key.iter().map(|k| quoted(&k.value)).collect();
            lines.push(format!("  PRIMARY KEY ({}) NOT ENFORCED", key.join(", ")));
        }
        writeln!(f, "{}", lines.join(",\n"))?;
        write!(f, ")")?;
        if let Some(comment) = &self.comment {
            write!(f, "\nCOMMENT {}", sql_string(comment))?;
        }
        if !self.partitioned_by.is_empty() {
            let by: Vec<String> = self
                .partitioned_by
                .iter()
                .map(|k| quoted(&k.value))
                .collect();
            write!(f, "\nPARTITIONED BY ({})", by.join(", "))?;
        }
        let options: Vec<String> = self
            .options
            .iter()
            .map(|(k, v)| {
                let v = if is_secret(k) {
                    "******".to_string()
                } else {
                    without_url_password(v)
                };
                format!("  {} = {}", sql_string(k), sql_string(&v))
            })
            .collect();
        write!(f, "\nWITH (\n{}\n)", options.join(",\n"))
    }
}

/// A column of [`CreateTable`].
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// The column's name.
    pub name: Ident,
    /// Physical, computed or metadata.
    pub kind: ColumnKind,
    /// `NOT NULL` was given after the type.
    pub not_null: bool,
    /// The column's `COMMENT`, if any.
    pub comment: Option<String>,
}

/// What a [`Column`] is.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "a table has a few columns, parsed once; unboxed ASTs can be matched on"
)]
pub enum ColumnKind {
    /// `name type`: a column the connector supplies.
    Physical {
        /// The declared type.
        data_type: DataType,
    },
    /// `name AS expr`: computed from the other columns.
    Computed {
        /// The expression.
        expr: Expr,
    },
    /// `name type METADATA [FROM 'key'] [VIRTUAL]`: connector metadata (a Kafka timestamp).
    Metadata {
        /// The declared type.
        data_type: DataType,
        /// The metadata key of `FROM 'key'`; without it, the column's name is the key.
        key: Option<String>,
        /// `VIRTUAL` was given: read-only, not written by a sink.
        is_virtual: bool,
    },
}

/// `WATERMARK FOR column AS expr`.
#[derive(Debug, Clone, PartialEq)]
pub struct Watermark {
    /// The event-time (rowtime) column.
    pub column: Ident,
    /// The watermark expression (`dateTime - INTERVAL '4' SECOND`).
    pub expr: Expr,
}

/// A script that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    /// The 1-based line in the script where the error was found.
    pub line: u64,
    /// The 1-based column in the script where the error was found.
    pub column: u64,
    /// What went wrong (sqlparser's message without its own position suffix).
    pub message: String,
}

impl ParseError {
    /// Converts a sqlparser error. sqlparser appends ` at Line: L, Column: C` to most messages;
    /// since the whole script is tokenized at once, that position already is the script's.
    /// Without one, the error is placed at `fallback` (the start of the statement).
    fn from_parser(error: ParserError, fallback: Location, end: Location) -> Self {
        let text = match error {
            ParserError::TokenizerError(s) | ParserError::ParserError(s) => s,
            ParserError::RecursionLimitExceeded => "recursion limit exceeded".to_string(),
        };
        if let Some(at) = text.rfind(" at Line: ") {
            let position = &text[at + " at Line: ".len()..];
            if let Some((line, column)) = position.split_once(", Column: ") {
                if let (Ok(line), Ok(column)) = (line.parse(), column.parse()) {
                    return ParseError {
                        line,
                        column,
                        message: text[..at].to_string(),
                    };
                }
            }
        }
        // "found: EOF" carries no position: the script ended too early, so point at its end.
        let at = if text.ends_with("EOF") { end } else { fallback };
        ParseError {
            line: at.line.max(1),
            column: at.column.max(1),
            message: text,
        }
    }
}

/// Parses a script of `;`-separated Flink SQL statements.
///
/// ```
/// use streamcore_sql::{parse_script, FlinkStatement};
///
/// let script = "SET 'parallelism.default' = '2';\nINSERT INTO out SELECT * FROM bid;";
/// let statements = parse_script(script).unwrap();
/// assert!(matches!(statements[0], FlinkStatement::Set { .. }));
/// assert!(matches!(statements[1], FlinkStatement::Sql(_)));
///
/// let error = parse_script("SELECT 1;\nSELEC 2").unwrap_err();
/// assert_eq!((error.line, error.column), (2, 1));
/// ```
pub fn parse_script(sql: &str) -> Result<Vec<FlinkStatement>, ParseError> {
    let tokens = tokenize(sql)?;
    let end = tokens
        .iter()
        .rev()
        .find(|t| !matches!(t.token, Token::Whitespace(_) | Token::EOF))
        .map(|t| t.span.end)
        .unwrap_or_else(Location::empty);
    let mut parser = Parser::new(&FlinkDialect).with_tokens_with_locations(tokens);
    let mut statements = Vec::new();
    loop {
        while parser.consume_token(&Token::SemiColon) {}
        let start = parser.peek_token();
        if start.token == Token::EOF {
            break;
        }
        let statement = parse_statement(&mut parser)
            .and_then(|statement| {
                let next = parser.peek_token();
                match next.token {
                    Token::SemiColon | Token::EOF => Ok((statement, next)),
                    _ => parser.expected("end of statement", next),
                }
            })
            .map_err(|e| ParseError::from_parser(e, start.span.start, end))?;
        statements.push(match statement {
            (FlinkStatement::Sql(statement @ Statement::CreateView(_)), next) => {
                let from = byte_offset(sql, start.span.start);
                let to = match next.token {
                    Token::SemiColon => byte_offset(sql, next.span.start),
                    _ => sql.len(),
                };
                FlinkStatement::CreateView {
                    statement,
                    source: sql.get(from..to).unwrap_or_default().trim().to_string(),
                }
            }
            (statement, _) => statement,
        });
    }
    Ok(statements)
}

/// The byte offset in `sql` of `at` (1-based line and character column).
fn byte_offset(sql: &str, at: Location) -> usize {
    let mut offset = 0;
    for (n, line) in sql.split_inclusive('\n').enumerate() {
        if n + 1 == at.line as usize {
            return offset
                + line
                    .char_indices()
                    .nth((at.column as usize).saturating_sub(1))
                    .map_or(line.len(), |(i, _)| i);
        }
        offset += line.len();
    }
    sql.len()
}

/// Tokenizes with positions. Flink has no shift operator, so `>>` becomes two `>` (the end of
/// a nested `ROW<… ROW<…>>`).
fn tokenize(sql: &str) -> Result<Vec<TokenWithSpan>, ParseError> {
    let tokens = Tokenizer::new(&FlinkDialect, sql)
        .tokenize_with_location()
        .map_err(|e| ParseError {
            line: e.location.line.max(1),
            column: e.location.column.max(1),
            message: e.message,
        })?;
    let mut out = Vec::with_capacity(tokens.len());
    for token in tokens {
        if token.token == Token::ShiftRight {
            let start = token.span.start;
            let middle = Location::new(start.line, start.column + 1);
            out.push(TokenWithSpan::new(Token::Gt, Span::new(start, middle)));
            out.push(TokenWithSpan::new(
                Token::Gt,
                Span::new(middle, token.span.end),
            ));
        } else {
            out.push(token);
        }
    }
    crate::match_recognize::move_within(&mut out);
    Ok(out)
}

/// The `n`th next token if it is an unquoted word, upper-cased.
fn word(parser: &Parser, n: usize) -> Option<String> {
    match parser.peek_nth_token(n).token {
        Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_uppercase()),
        _ => None,
    }
}

/// An error at the next token's position.
fn error_here<T>(parser: &Parser, message: &str) -> Result<T, ParserError> {
    Err(ParserError::ParserError(format!(
        "{message}{}",
        parser.peek_token().span.start
    )))
}

fn parse_statement(parser: &mut Parser) -> Result<FlinkStatement, ParserError> {
    let words: Vec<Option<String>> = (0..4).map(|n| word(parser, n)).collect();
    let words: Vec<&str> = words.iter().map(|w| w.as_deref().unwrap_or("")).collect();
    match words.as_slice() {
        ["CREATE", "TABLE", ..] | ["CREATE", "TEMPORARY", "TABLE", ..] => {
            Ok(FlinkStatement::CreateTable(parse_create_table(parser)?))
        }
        ["CREATE", "FUNCTION", ..]
        | ["CREATE", "TEMPORARY", "FUNCTION", ..]
        | ["CREATE", "TEMPORARY", "SYSTEM", "FUNCTION"] => parse_create_function(parser),
        ["SET", ..] => parse_set(parser),
        ["BEGIN", "STATEMENT", "SET", ..] => {
            (0..3).for_each(|_| {
                parser.next_token();
            });
            Ok(FlinkStatement::BeginStatementSet)
        }
        ["EXECUTE", "STATEMENT", "SET", "BEGIN"] => {
            (0..4).for_each(|_| {
                parser.next_token();
            });
            Ok(FlinkStatement::BeginStatementSet)
        }
        ["SHOW", "FUNCTIONS", ..] | ["SHOW", "USER", "FUNCTIONS", ..] => {
            parser.next_token();
            let user = parser.parse_keyword(Keyword::USER);
            parser.expect_keyword_is(Keyword::FUNCTIONS)?;
            let negated = parser.parse_keyword(Keyword::NOT);
            let like = match parser.parse_one_of_keywords(&[Keyword::LIKE, Keyword::ILIKE]) {
                Some(k) => Some(LikeFilter {
                    pattern: parser.parse_literal_string()?,
                    case_insensitive: k == Keyword::ILIKE,
                    negated,
                }),
                None if negated => return error_here(parser, "Expected: LIKE or ILIKE after NOT"),
                None => None,
            };
            Ok(FlinkStatement::ShowFunctions { user, like })
        }
        ["END", ..] => {
            parser.next_token();
            Ok(FlinkStatement::EndStatementSet)
        }
        _ => Ok(FlinkStatement::Sql(parser.parse_statement()?)),
    }
}

fn parse_create_function(parser: &mut Parser) -> Result<FlinkStatement, ParserError> {
    parser.expect_keyword_is(Keyword::CREATE)?;
    let temporary = parser.parse_keyword(Keyword::TEMPORARY);
    let system = temporary && parser.parse_keyword(Keyword::SYSTEM);
    parser.expect_keyword_is(Keyword::FUNCTION)?;
    let if_not_exists = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = parser.parse_object_name(false)?;
    parser.expect_keyword_is(Keyword::AS)?;
    let class = parser.parse_literal_string()?;
    let language = if parser.parse_keyword(Keyword::LANGUAGE) {
        Some(parser.parse_identifier()?)
    } else {
        None
    };
    Ok(FlinkStatement::CreateFunction {
        name,
        class,
        temporary,
        system,
        if_not_exists,
        language,
    })
}

/// `SET 'key' = 'value'`; an unquoted key or value (`SET a.b-c = 10`) is the text of its
/// tokens.
fn parse_set(parser: &mut Parser) -> Result<FlinkStatement, ParserError> {
    parser.expect_keyword_is(Keyword::SET)?;
    let key = set_part(parser, |t| {
        matches!(t, Token::Eq | Token::SemiColon | Token::EOF)
    });
    if key.is_empty() {
        return error_here(parser, "Expected: 'key' = 'value' after SET");
    }
    parser.expect_token(&Token::Eq)?;
    let value = set_part(parser, |t| matches!(t, Token::SemiColon | Token::EOF));
    Ok(FlinkStatement::Set { key, value })
}

fn set_part(parser: &mut Parser, end: impl Fn(&Token) -> bool) -> String {
    let mut text = String::new();
    while !end(&parser.peek_token().token) {
        match parser.next_token().token {
            Token::SingleQuotedString(s) => text.push_str(&s),
            token => text.push_str(&token.to_string()),
        }
    }
    text
}

fn parse_create_table(parser: &mut Parser) -> Result<CreateTable, ParserError> {
    parser.expect_keyword_is(Keyword::CREATE)?;
    let temporary = parser.parse_keyword(Keyword::TEMPORARY);
    parser.expect_keyword_is(Keyword::TABLE)?;
    let if_not_exists = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = parser.parse_object_name(false)?;
    parser.expect_token(&Token::LParen)?;
    let mut table = CreateTable {
        name,
        temporary,
        if_not_exists,
        columns: Vec::new(),
        watermark: None,
        primary_key: Vec::new(),
        partitioned_by: Vec::new(),
        comment: None,
        options: Vec::new(),
    };
    loop {
        if word(parser, 0).as_deref() == Some("WATERMARK")
            && word(parser, 1).as_deref() == Some("FOR")
        {
            if table.watermark.is_some() {
                return error_here(parser, "a table has at most one WATERMARK");
            }
            parser.next_token();
            parser.next_token();
            let column = parser.parse_identifier()?;
            parser.expect_keyword_is(Keyword::AS)?;
            let expr = parser.parse_expr()?;
            table.watermark = Some(Watermark { column, expr });
        } else if parse_primary_key_start(parser)? {
            if !table.primary_key.is_empty() {
                return error_here(parser, "a table has at most one PRIMARY KEY");
            }
            table.primary_key =
                parser.parse_parenthesized_column_list(IsOptional::Mandatory, false)?;
            parser.expect_keywords(&[Keyword::NOT, Keyword::ENFORCED])?;
        } else {
            let column = parse_column(parser, &mut table.primary_key)?;
            table.columns.push(column);
        }
        if !parser.consume_token(&Token::Comma) {
            break;
        }
    }
    parser.expect_token(&Token::RParen)?;
    if parser.parse_keyword(Keyword::COMMENT) {
        table.comment = Some(parser.parse_literal_string()?);
    }
    if parser.parse_keywords(&[Keyword::PARTITIONED, Keyword::BY]) {
        table.partitioned_by =
            parser.parse_parenthesized_column_list(IsOptional::Mandatory, false)?;
    }
    if parser.parse_keyword(Keyword::WITH) {
        table.options = parse_options(parser)?;
    }
    Ok(table)
}

/// `[CONSTRAINT name] PRIMARY KEY`: consumes it and says whether it was there.
fn parse_primary_key_start(parser: &mut Parser) -> Result<bool, ParserError> {
    if parser.parse_keyword(Keyword::CONSTRAINT) {
        parser.parse_identifier()?;
        parser.expect_keywords(&[Keyword::PRIMARY, Keyword::KEY])?;
        return Ok(true);
    }
    Ok(parser.parse_keywords(&[Keyword::PRIMARY, Keyword::KEY]))
}

/// A column definition; a column-level `PRIMARY KEY NOT ENFORCED` sets `primary_key`.
fn parse_column(parser: &mut Parser, primary_key: &mut Vec<Ident>) -> Result<Column, ParserError> {
    let name = parser.parse_identifier()?;
    let mut not_null = false;
    let kind = if parser.parse_keyword(Keyword::AS) {
        ColumnKind::Computed {
            expr: parser.parse_expr()?,
        }
    } else {
        let data_type = parser.parse_data_type()?;
        if parser.parse_keywords(&[Keyword::NOT, Keyword::NULL]) {
            not_null = true;
        } else {
            // Flink's default; nothing to record.
            let _ = parser.parse_keyword(Keyword::NULL);
        }
        if parser.parse_keyword(Keyword::METADATA) {
            let key = if parser.parse_keyword(Keyword::FROM) {
                Some(parser.parse_literal_string()?)
            } else {
                None
            };
            ColumnKind::Metadata {
                data_type,
                key,
                is_virtual: parser.parse_keyword(Keyword::VIRTUAL),
            }
        } else {
            if parse_primary_key_start(parser)? {
                parser.expect_keywords(&[Keyword::NOT, Keyword::ENFORCED])?;
                if !primary_key.is_empty() {
                    return error_here(parser, "a table has at most one PRIMARY KEY");
                }
                primary_key.push(name.clone());
            }
            ColumnKind::Physical { data_type }
        }
    };
    let comment = if parser.parse_keyword(Keyword::COMMENT) {
        Some(parser.parse_literal_string()?)
    } else {
        None
    };
    Ok(Column {
        name,
        kind,
        not_null,
        comment,
    })
}

/// `('key' = 'value', …)` after `WITH`, in the order written.
fn parse_options(parser: &mut Parser) -> Result<Vec<(String, String)>, ParserError> {
    parser.expect_token(&Token::LParen)?;
    let mut options = Vec::new();
    if parser.consume_token(&Token::RParen) {
        return Ok(options);
    }
    loop {
        let key = parser.parse_literal_string()?;
        parser.expect_token(&Token::Eq)?;
        let value = parser.parse_literal_string()?;
        options.push((key, value));
        if !parser.consume_token(&Token::Comma) {
            break;
        }
    }
    parser.expect_token(&Token::RParen)?;
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(sql: &str) -> FlinkStatement {
        let mut statements = parse_script(sql).unwrap_or_else(|e| panic!("{e}\n{sql}"));
        assert_eq!(statements.len(), 1, "{statements:?}");
        statements.remove(0)
    }

    fn create_table(sql: &str) -> CreateTable {
        match one(sql) {
            FlinkStatement::CreateTable(table) => table,
            other => panic!("not a CREATE TABLE: {other:?}"),
        }
    }

    fn parse_select(sql: &str) -> sqlparser::ast::Select {
        match one(sql) {
            FlinkStatement::Sql(Statement::Query(query)) => match *query.body {
                sqlparser::ast::SetExpr::Select(select) => *select,
                other => panic!("not a SELECT: {other:?}"),
            },
            other => panic!("not a query: {other:?}"),
        }
    }

    #[test]
    fn watermark_with_an_interval_expression() {
        let table = create_table(
            "CREATE TABLE t (a BIGINT, ts TIMESTAMP(3), \
             WATERMARK FOR ts AS ts - INTERVAL '4' SECOND) WITH ('connector' = 'nexmark')",
        );
        let watermark = table.watermark.expect("a watermark");
        assert_eq!(watermark.column.value, "ts");
        assert_eq!(watermark.expr.to_string(), "ts - INTERVAL '4' SECOND");
        assert!(matches!(watermark.expr, Expr::BinaryOp { .. }));
        let names: Vec<&str> = table
            .columns
            .iter()
            .map(|c| c.name.value.as_str())
            .collect();
        assert_eq!(names, ["a", "ts"]);
        assert!(matches!(
            &table.columns[1].kind,
            ColumnKind::Physical {
                data_type: DataType::Timestamp(Some(3), _)
            }
        ));
    }

    #[test]
    fn computed_and_metadata_columns() {
        let table = create_table(
            "CREATE TABLE t (a BIGINT NOT NULL, b AS a * 2, \
             ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL, \
             p ROW<id BIGINT, q ROW<x INT, y ARRAY<INT>>>, m MAP<STRING, INT>)",
        );
        assert!(table.columns[0].not_null);
        match &table.columns[1].kind {
            ColumnKind::Computed { expr } => assert_eq!(expr.to_string(), "a * 2"),
            other => panic!("{other:?}"),
        }
        match &table.columns[2].kind {
            ColumnKind::Metadata {
                key, is_virtual, ..
            } => {
                assert_eq!(key.as_deref(), Some("timestamp"));
                assert!(is_virtual);
            }
            other => panic!("{other:?}"),
        }
        match &table.columns[3].kind {
            ColumnKind::Physical {
                data_type: DataType::Struct(fields, _),
            } => {
                assert_eq!(fields.len(), 2);
                assert!(matches!(fields[1].field_type, DataType::Struct(..)));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            table.columns[4].kind,
            ColumnKind::Physical {
                data_type: DataType::Map(..)
            }
        ));
        assert!(table.options.is_empty());
    }

    #[test]
    fn primary_key_not_enforced() {
        let table = create_table(
            "CREATE TABLE t (a BIGINT, b VARCHAR, PRIMARY KEY (a, b) NOT ENFORCED) \
             WITH ('connector' = 'upsert-kafka')",
        );
        let key: Vec<&str> = table.primary_key.iter().map(|c| c.value.as_str()).collect();
        assert_eq!(key, ["a", "b"]);

        let table = create_table("CREATE TABLE t (a BIGINT PRIMARY KEY NOT ENFORCED, b VARCHAR)");
        assert_eq!(table.primary_key, [Ident::new("a")]);

        let error = parse_script("CREATE TABLE t (a BIGINT, PRIMARY KEY (a))").unwrap_err();
        assert_eq!(
            error.to_string(),
            "line 1, column 42: Expected: NOT, found: )"
        );
    }

    #[test]
    fn with_options_keep_their_order() {
        let table = create_table(
            "CREATE TABLE t (a INT) WITH ('z' = '1', 'connector' = 'kafka', 'a.b-c' = 'x''y')",
        );
        assert_eq!(
            table.options,
            [
                ("z".to_string(), "1".to_string()),
                ("connector".to_string(), "kafka".to_string()),
                ("a.b-c".to_string(), "x'y".to_string()),
            ]
        );
        assert_eq!(table.option("connector"), Some("kafka"));
        assert_eq!(table.option("missing"), None);
    }

    #[test]
    fn set() {
        assert_eq!(
            one("SET 'table.exec.mini-batch.enabled' = 'true';"),
            FlinkStatement::Set {
                key: "table.exec.mini-batch.enabled".to_string(),
                value: "true".to_string(),
            }
        );
        assert_eq!(
            one("SET parallelism.default = 2"),
            FlinkStatement::Set {
                key: "parallelism.default".to_string(),
                value: "2".to_string(),
            }
        );
        assert!(parse_script("SET;").is_err());
    }

    #[test]
    fn create_function() {
        assert_eq!(
            one("CREATE FUNCTION count_char AS 'com.github.nexmark.flink.udf.CountChar'"),
            FlinkStatement::CreateFunction {
                name: ObjectName::from(vec![Ident::new("count_char")]),
                class: "com.github.nexmark.flink.udf.CountChar".to_string(),
                temporary: false,
                system: false,
                if_not_exists: false,
                language: None,
            }
        );
        match one("CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS f AS 'a.B' LANGUAGE JAVA") {
            FlinkStatement::CreateFunction {
                temporary,
                system,
                if_not_exists,
                language,
                ..
            } => {
                assert!(temporary && system && if_not_exists);
                assert_eq!(language, Some(Ident::new("JAVA")));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tumble_with_a_table_argument() {
        let select = parse_select(
            "SELECT window_start, window_end, COUNT(*) \
             FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND)) \
             GROUP BY window_start, window_end",
        );
        let sqlparser::ast::TableFactor::TableFunction { expr, .. } = &select.from[0].relation
        else {
            panic!("not a table function: {:?}", select.from[0].relation);
        };
        assert_eq!(
            expr.to_string(),
            "TUMBLE(TABLE(bid), DESCRIPTOR(dateTime), INTERVAL '10' SECOND)"
        );
        let Expr::Function(tumble) = expr else {
            panic!("{expr:?}");
        };
        let sqlparser::ast::FunctionArguments::List(args) = &tumble.args else {
            panic!("{tumble:?}");
        };
        assert_eq!(args.args.len(), 3);
        assert_eq!(args.args[0].to_string(), "TABLE(bid)");

        // SESSION's partition keys: one, or a parenthesized list.
        let select = parse_select(
            "SELECT * FROM TABLE(SESSION(TABLE bid PARTITION BY (bidder, auction), \
             DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND))",
        );
        let sqlparser::ast::TableFactor::TableFunction { expr, .. } = &select.from[0].relation
        else {
            panic!("{:?}", select.from[0].relation);
        };
        assert_eq!(
            expr.to_string(),
            "SESSION(TABLE(bid, bidder, auction), DESCRIPTOR(`dateTime`), INTERVAL '10' SECOND)"
        );
    }

    #[test]
    fn for_system_time_as_of() {
        let select = parse_select(
            "SELECT * FROM bid AS B JOIN side_input FOR SYSTEM_TIME AS OF B.p_time AS S \
             ON mod(B.auction, 10000) = S.key",
        );
        match &select.from[0].joins[0].relation {
            sqlparser::ast::TableFactor::Table {
                name,
                alias,
                version: Some(sqlparser::ast::TableVersion::ForSystemTimeAsOf(at)),
                ..
            } => {
                assert_eq!(name.to_string(), "side_input");
                assert_eq!(alias.as_ref().map(|a| a.name.value.as_str()), Some("S"));
                assert_eq!(at.to_string(), "B.p_time");
            }
            other => panic!("no FOR SYSTEM_TIME AS OF: {other:?}"),
        }
    }

    #[test]
    fn filter_during_aggregation_and_backticks() {
        let select =
            parse_select("SELECT count(DISTINCT bidder) FILTER (WHERE price < 10000) FROM `bid`");
        assert_eq!(
            select.projection[0].to_string(),
            "count(DISTINCT bidder) FILTER (WHERE price < 10000)"
        );
        assert_eq!(select.from[0].relation.to_string(), "`bid`");
    }

    #[test]
    fn a_script_splits_into_statements() {
        let statements =
            parse_script(";SET 'a' = 'b';; SELECT 1;\nCREATE TABLE t (a INT);\n").unwrap();
        assert_eq!(statements.len(), 3);
        assert!(matches!(statements[2], FlinkStatement::CreateTable(_)));
    }

    #[test]
    fn errors_name_line_and_column_in_the_script() {
        let error = parse_script("SELECT 1;\nSELEC auction FROM bid;").unwrap_err();
        assert_eq!(
            error.to_string(),
            "line 2, column 1: Expected: an SQL statement, found: SELEC"
        );
        assert_eq!((error.line, error.column), (2, 1));

        let error = parse_script("SELECT 1\nSELECT 2").unwrap_err();
        assert_eq!(
            error.to_string(),
            "line 2, column 1: Expected: end of statement, found: SELECT"
        );

        let error = parse_script("SELECT 1;\n  SELECT 'abc").unwrap_err();
        assert_eq!(
            error.to_string(),
            "line 2, column 10: Unterminated string literal"
        );

        // The script ends too early: the error is at its end (sqlparser gives EOF no position).
        let error = parse_script("SELECT 1;\n\nCREATE TABLE t (a BIGINT").unwrap_err();
        assert_eq!(
            error.to_string(),
            "line 3, column 25: Expected: ), found: EOF"
        );
    }
}
