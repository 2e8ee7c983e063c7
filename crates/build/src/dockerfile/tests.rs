//! Table-driven tests for the parser and for expansion.

use super::ast::*;
use super::{expand, expand_words, parse};

#[test]
fn smoke() {
    let df =
        parse("FROM httpd:2.4\nCOPY ./public-html/ /usr/local/apache2/htdocs/\n").expect("parses");
    assert_eq!(df.stages.len(), 1);
    let v = |n: &str| (n == "A").then(|| "x y".to_string());
    assert_eq!(expand("${A:-z}/$B", '\\', &v).as_deref(), Ok("x y/"));
    assert_eq!(
        expand_words("$A 'b c'", '\\', &v),
        Ok(vec!["x".into(), "y".into(), "b c".into()])
    );
    let _ = Command::Shell(String::new());
}
