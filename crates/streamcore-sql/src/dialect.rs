//! [`FlinkDialect`]: the sqlparser dialect for Flink SQL.

use sqlparser::ast::{
    DataType, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList,
    FunctionArguments, Ident, MapBracketKind, ObjectName, StructBracketKind, StructField,
};
use sqlparser::dialect::Dialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::Token;

/// Flink's SQL dialect, as far as sqlparser's dialect hooks reach.
///
/// - Identifiers are quoted with backticks (`` `dateTime` ``); a quoted identifier keeps its
///   quote style and its case.
/// - `COUNT(DISTINCT x) FILTER (WHERE …)`, `FOR SYSTEM_TIME AS OF` (temporal joins),
///   `MATCH_RECOGNIZE`, named arguments with `=>` and named window references parse.
/// - `TABLE t [PARTITION BY k | PARTITION BY (k, …)]` as a function argument (the window table
///   functions: `TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND)`) becomes the
///   call `TABLE(t [, k, …])`: the first argument is the table's name as an identifier, the
///   others are the partition keys.
/// - Flink's map constructor `MAP[k1, v1, …]` becomes the call `MAP(k1, v1, …)`.
/// - The types `ROW<name type, …>` and `ROW(name type, …)` become [`DataType::Struct`] and
///   `MAP<k, v>` becomes [`DataType::Map`] (`ARRAY<t>` and `STRING` parse without help).
///
/// Statements sqlparser's AST has no room for (a `WATERMARK` clause, computed columns, Flink's
/// `CREATE FUNCTION`) are parsed by [`crate::parser::parse_script`], not here.
#[derive(Debug, Clone, Copy, Default)]
pub struct FlinkDialect;

impl Dialect for FlinkDialect {
    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        ch == '`'
    }

    fn identifier_quote_style(&self, _identifier: &str) -> Option<char> {
        Some('`')
    }

    fn is_identifier_start(&self, ch: char) -> bool {
        ch.is_alphabetic() || ch == '_' || ch == '$'
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        ch.is_alphanumeric() || ch == '_' || ch == '$'
    }

    fn supports_table_versioning(&self) -> bool {
        true
    }

    fn supports_match_recognize(&self) -> bool {
        true
    }

    fn supports_filter_during_aggregation(&self) -> bool {
        true
    }

    fn supports_named_fn_args_with_rarrow_operator(&self) -> bool {
        true
    }

    fn supports_window_clause_named_window_reference(&self) -> bool {
        true
    }

    fn parse_prefix(&self, parser: &mut Parser) -> Option<Result<Expr, ParserError>> {
        if parser.peek_keyword(Keyword::MAP) && parser.peek_nth_token(1).token == Token::LBracket {
            parser.next_token();
            parser.next_token();
            return Some(parse_map_constructor(parser));
        }
        if !parser.peek_keyword(Keyword::TABLE)
            || !matches!(parser.peek_nth_token(1).token, Token::Word(_))
        {
            return None;
        }
        parser.next_token();
        Some(parse_table_argument(parser))
    }

    fn parse_data_type(&self, parser: &mut Parser) -> Option<Result<DataType, ParserError>> {
        let word = match &parser.peek_token().token {
            Token::Word(w) => w.value.to_uppercase(),
            _ => return None,
        };
        let next = parser.peek_nth_token(1).token;
        match word.as_str() {
            "ROW" if matches!(next, Token::Lt | Token::LParen) => {
                parser.next_token();
                let angle = parser.next_token().token == Token::Lt;
                Some(parse_row_fields(parser, angle))
            }
            "MAP" if next == Token::Lt => {
                parser.next_token();
                parser.next_token();
                Some(parse_map_types(parser))
            }
            _ => None,
        }
    }
}

/// The rest of Flink's map constructor `MAP[k1, v1, …]`, after `MAP[`: the call `MAP(k1, v1,
/// …)`.
fn parse_map_constructor(parser: &mut Parser) -> Result<Expr, ParserError> {
    let entries = parser.parse_comma_separated(Parser::parse_expr)?;
    parser.expect_token(&Token::RBracket)?;
    Ok(call("MAP", entries.into_iter().map(unnamed).collect()))
}

/// The positional argument `e`.
fn unnamed(e: Expr) -> FunctionArg {
    FunctionArg::Unnamed(FunctionArgExpr::Expr(e))
}

/// The call `name(args)`.
fn call(name: &str, args: Vec<FunctionArg>) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args,
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

/// The rest of `TABLE t [PARTITION BY …]`, after `TABLE`.
fn parse_table_argument(parser: &mut Parser) -> Result<Expr, ParserError> {
    let name = parser.parse_object_name(false)?;
    let mut parts = Vec::with_capacity(name.0.len());
    for part in &name.0 {
        match part.as_ident() {
            Some(ident) => parts.push(ident.clone()),
            None => {
                return Err(ParserError::ParserError(format!(
                    "Expected: a table name, found: {name}{}",
                    parser.peek_token().span.start
                )))
            }
        }
    }
    let mut args = vec![unnamed(Expr::CompoundIdentifier(parts))];
    if parser.parse_keywords(&[Keyword::PARTITION, Keyword::BY]) {
        // One key, or a parenthesized list: a bare comma list would swallow the function's
        // following arguments.
        let keys = if parser.consume_token(&Token::LParen) {
            let keys = parser.parse_comma_separated(Parser::parse_expr)?;
            parser.expect_token(&Token::RParen)?;
            keys
        } else {
            vec![parser.parse_expr()?]
        };
        args.extend(keys.into_iter().map(unnamed));
    }
    Ok(call("TABLE", args))
}

/// The fields of `ROW<…>` (`angle`) or `ROW(…)`, after the opening bracket.
fn parse_row_fields(parser: &mut Parser, angle: bool) -> Result<DataType, ParserError> {
    let mut fields = Vec::new();
    loop {
        let name = parser.parse_identifier()?;
        let field_type = parser.parse_data_type()?;
        fields.push(StructField {
            field_name: Some(name),
            field_type,
            options: None,
        });
        if !parser.consume_token(&Token::Comma) {
            break;
        }
    }
    let (close, kind) = if angle {
        (Token::Gt, StructBracketKind::AngleBrackets)
    } else {
        (Token::RParen, StructBracketKind::Parentheses)
    };
    parser.expect_token(&close)?;
    Ok(DataType::Struct(fields, kind))
}

/// `k, v>` of `MAP<k, v>`.
fn parse_map_types(parser: &mut Parser) -> Result<DataType, ParserError> {
    let key = parser.parse_data_type()?;
    parser.expect_token(&Token::Comma)?;
    let value = parser.parse_data_type()?;
    parser.expect_token(&Token::Gt)?;
    Ok(DataType::Map(
        Box::new(key),
        Box::new(value),
        MapBracketKind::AngleBrackets,
    ))
}
