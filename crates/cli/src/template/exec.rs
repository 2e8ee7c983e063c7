//! Executing a parsed template against a [`Val`]: Go's semantics for
//! fields (a missing key is `<no value>`; on a listing row, whose fields
//! are fixed, an error), variables and their scopes, `if`/`with`/`range`
//! (maps in key order, integers counted), and the functions a docker
//! `--format` has: Go's builtins (`and`, `or`, `not`, `len`, `index`,
//! `slice`, `eq`, `ne`, `lt`, `le`, `gt`, `ge`, `print`, `printf`,
//! `println`, `html`, `js`, `urlquery`) and docker's (`json`, `split`,
//! `join`, `title`, `lower`, `upper`, `pad`, `truncate`), or, for a
//! table's header, docker's header variants that leave the title as it is.

use super::parse::{Cmd, Node, Operand, Pipe, Template};
use super::value::{go_float, go_name_of, Val};

/// Methods of the data (`{{.Label "k"}}` on a `ps` row): called with the
/// name and the evaluated arguments; `None` when there is no such method.
pub type Methods<'a> = &'a dyn Fn(&str, &[Val]) -> Option<Result<Val, String>>;

/// How a template runs.
#[derive(Clone, Copy, Default)]
pub struct Env<'a> {
    /// docker's header functions (the row's title stays as it is).
    pub header: bool,
    pub methods: Option<Methods<'a>>,
    /// The Go type of the data when its fields are fixed (a listing row):
    /// asking for another field is an error naming that type.
    pub strict: Option<&'a str>,
    /// A key the data's top level lacks is an error (`inspect`, whose
    /// objects have fixed fields), as Go's `missingkey=error`.
    pub missing_key_error: bool,
    /// Go structs of the data, by their field path from the top (`State`):
    /// their fields in declaration order, for printing one as Go's `%v`
    /// does (`{running true ...}`) rather than as a map.
    pub structs: Option<Structs<'a>>,
    /// Which spelling of a field reaches it.
    pub names: Names,
}

/// How a template names the data's fields.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub enum Names {
    /// The Go field name or the JSON key (`.ID` and `.Id`).
    #[default]
    Both,
    /// Only the Go field name, as on docker's Go structs: a JSON key whose
    /// Go name differs (`.Id`) is no field.
    Go,
    /// Only the JSON key, as on the raw JSON docker's `inspect` falls back
    /// to.
    Json,
}

/// The fields, in Go's order, of the struct at a field path, if it is one.
pub type Structs<'a> = &'a dyn Fn(&str) -> Option<&'static [&'static str]>;

/// Every function a template may call.
pub const FUNCTIONS: &[&str] = &[
    "and", "or", "not", "len", "index", "slice", "eq", "ne", "lt", "le", "gt", "ge", "print",
    "printf", "println", "html", "js", "urlquery", "call", "json", "split", "join", "title",
    "lower", "upper", "pad", "truncate",
];

enum Flow {
    Normal,
    Break,
    Continue,
}

struct State<'a> {
    env: Env<'a>,
    root: &'a Val,
    vars: Vec<(String, Val)>,
    out: String,
}

type R<T> = Result<T, String>;

impl Template {
    /// Names of functions the template calls that do not exist.
    pub fn unknown_functions(&self) -> Vec<String> {
        fn operand(o: &Operand, out: &mut Vec<String>) {
            match o {
                Operand::Func(f) if !FUNCTIONS.contains(&f.as_str()) => out.push(f.clone()),
                Operand::Sub(p, _) => pipe(p, out),
                _ => {}
            }
        }
        fn pipe(p: &Pipe, out: &mut Vec<String>) {
            for c in &p.cmds {
                for a in &c.args {
                    operand(a, out);
                }
            }
        }
        fn nodes(ns: &[Node], out: &mut Vec<String>) {
            for n in ns {
                match n {
                    Node::Action(p) => pipe(p, out),
                    Node::If(b, e) | Node::With(b, e) => {
                        for (p, body) in b {
                            pipe(p, out);
                            nodes(body, out);
                        }
                        nodes(e, out);
                    }
                    Node::Range(p, body, e) => {
                        pipe(p, out);
                        nodes(body, out);
                        nodes(e, out);
                    }
                    _ => {}
                }
            }
        }
        let mut out = Vec::new();
        nodes(&self.nodes, &mut out);
        out
    }

    /// Every field name the template reads (`.A.B` gives A and B), for
    /// the header of a table.
    pub fn field_names(&self) -> Vec<String> {
        fn operand(o: &Operand, out: &mut Vec<String>) {
            match o {
                Operand::Field(c) | Operand::Var(_, c) => out.extend(c.iter().cloned()),
                Operand::Sub(p, c) => {
                    pipe(p, out);
                    out.extend(c.iter().cloned());
                }
                _ => {}
            }
        }
        fn pipe(p: &Pipe, out: &mut Vec<String>) {
            for c in &p.cmds {
                for a in &c.args {
                    operand(a, out);
                }
            }
        }
        fn nodes(ns: &[Node], out: &mut Vec<String>) {
            for n in ns {
                match n {
                    Node::Action(p) => pipe(p, out),
                    Node::If(b, e) | Node::With(b, e) => {
                        for (p, body) in b {
                            pipe(p, out);
                            nodes(body, out);
                        }
                        nodes(e, out);
                    }
                    Node::Range(p, body, e) => {
                        pipe(p, out);
                        nodes(body, out);
                        nodes(e, out);
                    }
                    _ => {}
                }
            }
        }
        let mut out = Vec::new();
        nodes(&self.nodes, &mut out);
        out
    }

    /// Runs the template with `data` as `.` (and `$`).
    pub fn execute(&self, data: &Val, env: Env<'_>) -> R<String> {
        let mut st = State {
            env,
            root: data,
            vars: vec![("$".to_string(), data.clone())],
            out: String::new(),
        };
        st.walk(&self.nodes, data)?;
        Ok(st.out)
    }
}

fn exec_err(p: &Pipe, at: &str, msg: impl std::fmt::Display) -> String {
    let _ = &p.text;
    format!("template: :{}: executing \"\" at <{at}>: {msg}", p.pos)
}

impl<'a> State<'a> {
    fn walk(&mut self, nodes: &[Node], dot: &Val) -> R<Flow> {
        for n in nodes {
            match n {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipe(p, dot, true)?;
                    if p.vars.is_empty() {
                        let s = match self.struct_fields(p, dot) {
                            Some(fields) if matches!(v, Val::Map(_)) => v.go_struct_string(fields),
                            _ => v.go_string(),
                        };
                        self.out.push_str(&s);
                    }
                }
                Node::If(branches, else_) | Node::With(branches, else_) => {
                    let is_with = matches!(n, Node::With(..));
                    let mark = self.vars.len();
                    let mut taken = false;
                    for (cond, body) in branches {
                        let v = self.pipe(cond, dot, true)?;
                        if v.truthy() {
                            let flow = if is_with {
                                self.walk(body, &v)?
                            } else {
                                self.walk(body, dot)?
                            };
                            self.vars.truncate(mark);
                            if !matches!(flow, Flow::Normal) {
                                return Ok(flow);
                            }
                            taken = true;
                            break;
                        }
                    }
                    if !taken {
                        let flow = self.walk(else_, dot)?;
                        self.vars.truncate(mark);
                        if !matches!(flow, Flow::Normal) {
                            return Ok(flow);
                        }
                    }
                }
                Node::Range(p, body, else_) => {
                    let flow = self.range(p, body, else_, dot)?;
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
            }
        }
        Ok(Flow::Normal)
    }

    /// The Go struct layout of what a `{{.A.B}}` action prints, when the
    /// path starts at the top of the data and names a known struct.
    fn struct_fields(&self, p: &Pipe, dot: &Val) -> Option<&'static [&'static str]> {
        let structs = self.env.structs?;
        let [cmd] = p.cmds.as_slice() else {
            return None;
        };
        match cmd.args.as_slice() {
            [Operand::Field(chain)] if dot == self.root => structs(&chain.join(".")),
            [Operand::Var(name, chain)] if name == "$" && !chain.is_empty() => {
                structs(&chain.join("."))
            }
            _ => None,
        }
    }

    fn range(&mut self, p: &Pipe, body: &[Node], else_: &[Node], dot: &Val) -> R<Flow> {
        let v = self.pipe(p, dot, false)?;
        let items: Vec<(Val, Val)> = match &v {
            Val::List(l) => l
                .iter()
                .enumerate()
                .map(|(i, e)| (Val::Int(i as i64), e.clone()))
                .collect(),
            Val::Map(m) => {
                let mut pairs: Vec<(Val, Val)> = m
                    .iter()
                    .map(|(k, e)| (Val::Str(k.clone()), e.clone()))
                    .collect();
                pairs.sort_by_key(|a| a.0.go_string());
                pairs
            }
            Val::Int(n) => {
                if p.vars.len() > 1 {
                    return Err(exec_err(
                        p,
                        &p.text,
                        "can't use two variables ranging over an integer",
                    ));
                }
                (0..*n.max(&0))
                    .map(|i| (Val::Int(i), Val::Int(i)))
                    .collect()
            }
            Val::Missing | Val::Null => Vec::new(),
            other => {
                return Err(exec_err(
                    p,
                    &p.text,
                    format!("range can't iterate over {}", other.go_string()),
                ))
            }
        };
        if items.is_empty() {
            let mark = self.vars.len();
            let flow = self.walk(else_, dot)?;
            self.vars.truncate(mark);
            return Ok(match flow {
                Flow::Normal => Flow::Normal,
                other => other,
            });
        }
        for (key, elem) in items {
            let mark = self.vars.len();
            match p.vars.as_slice() {
                [] => {}
                [one] => self.set_var(one, elem.clone(), p)?,
                [k, e] => {
                    self.set_var(k, key, p)?;
                    self.set_var(e, elem.clone(), p)?;
                }
                _ => return Err(exec_err(p, &p.text, "too many declarations in range")),
            }
            let flow = self.walk(body, &elem)?;
            self.vars.truncate(mark);
            if matches!(flow, Flow::Break) {
                break;
            }
        }
        Ok(Flow::Normal)
    }

    /// Declares (`:=`) or assigns (`=`) a variable.
    fn set_var(&mut self, name: &str, v: Val, p: &Pipe) -> R<()> {
        if p.assign {
            match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                Some(slot) => slot.1 = v,
                None => return Err(exec_err(p, name, format!("undefined variable: {name}"))),
            }
        } else {
            self.vars.push((name.to_string(), v));
        }
        Ok(())
    }

    fn pipe(&mut self, p: &Pipe, dot: &Val, declare: bool) -> R<Val> {
        let mut last: Option<Val> = None;
        for c in &p.cmds {
            last = Some(self.cmd(p, c, dot, last)?);
        }
        let v = last.unwrap_or(Val::Missing);
        if declare {
            match p.vars.as_slice() {
                [] => {}
                [name] => self.set_var(name, v.clone(), p)?,
                _ => return Err(exec_err(p, &p.text, "too many declarations")),
            }
        }
        Ok(v)
    }

    fn var(&self, p: &Pipe, name: &str) -> R<Val> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| format!("template: :{}: undefined variable \"{name}\"", p.pos))
    }

    fn cmd(&mut self, p: &Pipe, c: &Cmd, dot: &Val, last: Option<Val>) -> R<Val> {
        let (first, rest) = c.args.split_first().expect("a command has an operand");
        let err = |m: String| exec_err(p, &c.text, m);
        let takes_args = !rest.is_empty() || last.is_some();
        match first {
            Operand::Func(name) => {
                let r = self.call(p, name, rest, dot, last);
                r.map_err(|m| {
                    if m.starts_with("template:") {
                        m
                    } else {
                        err(m)
                    }
                })
            }
            Operand::Field(chain) => self.chain(p, c, dot, chain, rest, dot, last),
            Operand::Var(name, chain) if !chain.is_empty() => {
                let base = self.var(p, name)?;
                self.chain(p, c, &base, chain, rest, dot, last)
            }
            Operand::Sub(inner, chain) if !chain.is_empty() => {
                let base = self.pipe(inner, dot, false)?;
                self.chain(p, c, &base, chain, rest, dot, last)
            }
            other => {
                if takes_args {
                    return Err(err(format!(
                        "can't give argument to non-function {}",
                        c.text.split_whitespace().next().unwrap_or_default()
                    )));
                }
                self.operand(p, other, dot)
            }
        }
    }

    /// `.A.B.C args...`: fields up to the last name, which is a method
    /// when there are arguments.
    #[allow(clippy::too_many_arguments)]
    fn chain(
        &mut self,
        p: &Pipe,
        c: &Cmd,
        base: &Val,
        chain: &[String],
        args: &[Operand],
        dot: &Val,
        last: Option<Val>,
    ) -> R<Val> {
        let err = |m: String| exec_err(p, &c.text, m);
        let mut recv = base.clone();
        // Methods and fixed fields belong to the data the template started
        // with (a listing row), wherever it is reached from (`.`, `$`).
        let mut is_root = (self.env.methods.is_some() || self.env.strict.is_some())
            && (std::ptr::eq(base, self.root) || base == self.root);
        for (i, name) in chain.iter().enumerate() {
            let final_name = i + 1 == chain.len();
            let call_args: Vec<Val> = if final_name {
                let mut v = Vec::new();
                for a in args {
                    v.push(self.operand(p, a, dot)?);
                }
                v.extend(last.clone());
                v
            } else {
                Vec::new()
            };
            if is_root {
                if let Some(m) = self.env.methods {
                    if let Some(r) = m(name, &call_args) {
                        recv = r.map_err(&err)?;
                        is_root = false;
                        continue;
                    }
                }
            }
            if !call_args.is_empty() {
                // A row without such a field or method: Go names the field.
                if let Some(ty) = self.env.strict.filter(|_| is_root) {
                    if matches!(recv, Val::Map(_)) && recv.field(name).is_none() {
                        return Err(exec_err(
                            p,
                            &format!(".{}", chain[..=i].join(".")),
                            format!("can't evaluate field {name} in type {ty}"),
                        ));
                    }
                }
                return Err(err(format!(
                    "{name} has arguments but cannot be invoked as function"
                )));
            }
            let found = match self.env.names {
                Names::Both => recv.field(name),
                Names::Json => recv.get(name),
                Names::Go if go_name_of(name).is_some() && matches!(recv, Val::Map(_)) => {
                    return Err(err(format!("can't evaluate field {name} in a Go struct")))
                }
                Names::Go => recv.field(name),
            };
            recv = match &recv {
                Val::Map(_) => match found {
                    Some(v) => v.clone(),
                    None => match self.env.strict.filter(|_| is_root) {
                        Some(ty) => {
                            return Err(err(format!("can't evaluate field {name} in type {ty}")))
                        }
                        None if self.env.missing_key_error
                            && (std::ptr::eq(&recv, self.root) || &recv == self.root) =>
                        {
                            return Err(err(format!("map has no entry for key \"{name}\"")))
                        }
                        None => Val::Missing,
                    },
                },
                Val::Missing | Val::Null => Val::Missing,
                other => {
                    return Err(err(format!(
                        "can't evaluate field {name} in type {}",
                        other.type_name()
                    )))
                }
            };
            is_root = false;
        }
        Ok(recv)
    }

    /// An operand's value as an argument.
    fn operand(&mut self, p: &Pipe, o: &Operand, dot: &Val) -> R<Val> {
        Ok(match o {
            Operand::Dot => dot.clone(),
            Operand::Str(s) => Val::Str(s.clone()),
            Operand::Int(n) => Val::Int(*n),
            Operand::Float(f) => Val::Float(*f),
            Operand::Bool(b) => Val::Bool(*b),
            Operand::Nil => Val::Null,
            Operand::Var(name, chain) => {
                let base = self.var(p, name)?;
                let c = Cmd {
                    args: Vec::new(),
                    text: format!("{name}.{}", chain.join(".")),
                };
                return self.chain(p, &c, &base, chain, &[], dot, None);
            }
            Operand::Field(chain) => {
                let c = Cmd {
                    args: Vec::new(),
                    text: format!(".{}", chain.join(".")),
                };
                return self.chain(p, &c, dot, chain, &[], dot, None);
            }
            Operand::Sub(inner, chain) => {
                let base = self.pipe(inner, dot, false)?;
                if chain.is_empty() {
                    return Ok(base);
                }
                let c = Cmd {
                    args: Vec::new(),
                    text: format!("(...).{}", chain.join(".")),
                };
                return self.chain(p, &c, &base, chain, &[], dot, None);
            }
            Operand::Func(name) => return self.call(p, name, &[], dot, None),
        })
    }

    fn call(
        &mut self,
        p: &Pipe,
        name: &str,
        args: &[Operand],
        dot: &Val,
        last: Option<Val>,
    ) -> R<Val> {
        // `and` and `or` stop at the first argument that decides.
        if name == "and" || name == "or" {
            let n = args.len() + usize::from(last.is_some());
            if n == 0 {
                return Err(format!(
                    "wrong number of args for {name}: want at least 1 got 0"
                ));
            }
            let mut v = Val::Missing;
            for (i, a) in args.iter().enumerate() {
                v = self.operand(p, a, dot)?;
                let decided = if name == "and" {
                    !v.truthy()
                } else {
                    v.truthy()
                };
                if decided || (i + 1 == n) {
                    return Ok(v);
                }
            }
            return Ok(last.unwrap_or(v));
        }
        let mut vals = Vec::new();
        for a in args {
            vals.push(self.operand(p, a, dot)?);
        }
        vals.extend(last);
        if self.env.header
            && matches!(
                name,
                "json" | "split" | "join" | "title" | "lower" | "upper" | "truncate"
            )
        {
            // The header keeps the column's title.
            return vals
                .into_iter()
                .next()
                .ok_or_else(|| format!("wrong number of args for {name}: want 1 got 0"));
        }
        if name == "json" && self.env.strict.is_some() && vals.len() == 1 && &vals[0] == self.root {
            // A listing row marshals itself with Go's `json.Marshal`, which
            // escapes HTML characters (docker's `MarshalJSON` of a row).
            let text = vals[0]
                .to_json()
                .replace('<', "\\u003c")
                .replace('>', "\\u003e")
                .replace('&', "\\u0026");
            return Ok(Val::Str(text));
        }
        call_function(name, &vals)
    }
}

fn want(name: &str, vals: &[Val], n: usize) -> R<()> {
    if vals.len() != n {
        return Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            vals.len()
        ));
    }
    Ok(())
}

fn string_arg(v: &Val) -> R<&str> {
    match v {
        Val::Str(s) => Ok(s),
        Val::Missing => Err("invalid value; expected string".into()),
        other => Err(format!(
            "wrong type for value; expected string; got {}",
            other.type_name()
        )),
    }
}

fn int_arg(v: &Val) -> R<i64> {
    match v {
        Val::Int(n) => Ok(*n),
        Val::Float(f) if f.fract() == 0.0 => Ok(*f as i64),
        Val::Missing => Err("invalid value; expected int".into()),
        other => Err(format!(
            "wrong type for value; expected int; got {}",
            other.type_name()
        )),
    }
}

/// A builtin or docker function on evaluated arguments.
pub fn call_function(name: &str, vals: &[Val]) -> R<Val> {
    let calling = |m: String| format!("error calling {name}: {m}");
    match name {
        "not" => {
            want(name, vals, 1)?;
            Ok(Val::Bool(!vals[0].truthy()))
        }
        "len" => {
            want(name, vals, 1)?;
            Ok(Val::Int(match &vals[0] {
                Val::Str(s) => s.len() as i64,
                Val::List(l) => l.len() as i64,
                Val::Map(m) => m.len() as i64,
                Val::Null => 0,
                other => return Err(calling(format!("len of type {}", other.type_name()))),
            }))
        }
        "index" => {
            let Some((first, keys)) = vals.split_first() else {
                return Err("wrong number of args for index: want at least 1 got 0".into());
            };
            let mut v = first.clone();
            for k in keys {
                v = match (&v, k) {
                    (Val::List(l), k) => {
                        let i = int_arg(k).map_err(calling)?;
                        match usize::try_from(i).ok().and_then(|i| l.get(i)) {
                            Some(e) => e.clone(),
                            None => return Err(calling(format!("index out of range: {i}"))),
                        }
                    }
                    (Val::Str(s), k) => {
                        let i = int_arg(k).map_err(calling)?;
                        match usize::try_from(i).ok().and_then(|i| s.as_bytes().get(i)) {
                            Some(b) => Val::Int(i64::from(*b)),
                            None => return Err(calling(format!("index out of range: {i}"))),
                        }
                    }
                    (Val::Map(m), Val::Str(key)) => match v.get(key) {
                        Some(x) => x.clone(),
                        // The zero value of the map's element type, as
                        // docker's typed structs have it: a nil pointer
                        // for a map of objects (`.NetworkSettings.Networks`),
                        // an empty string for a map of strings (labels).
                        None if m.iter().any(|(_, x)| matches!(x, Val::Map(_))) => Val::Null,
                        None => Val::Str(String::new()),
                    },
                    (Val::Map(_), other) => {
                        return Err(calling(format!(
                            "value has type {}; should be string",
                            other.type_name()
                        )))
                    }
                    (Val::Missing | Val::Null, _) => Val::Str(String::new()),
                    (other, _) => {
                        return Err(calling(format!(
                            "can't index item of type {}",
                            other.type_name()
                        )))
                    }
                };
            }
            Ok(v)
        }
        "slice" => {
            let Some((first, idx)) = vals.split_first() else {
                return Err("wrong number of args for slice: want at least 1 got 0".into());
            };
            let len = match first {
                Val::Str(s) => s.len(),
                Val::List(l) => l.len(),
                other => {
                    return Err(calling(format!(
                        "can't slice item of type {}",
                        other.type_name()
                    )))
                }
            };
            if idx.len() > 2 {
                return Err(calling("too many slice indexes".into()));
            }
            let i = idx
                .first()
                .map(int_arg)
                .transpose()
                .map_err(calling)?
                .unwrap_or(0);
            let j = idx
                .get(1)
                .map(int_arg)
                .transpose()
                .map_err(calling)?
                .unwrap_or(len as i64);
            if i < 0 || j < i || j as usize > len {
                return Err(calling(format!(
                    "index out of range: {}",
                    if i < 0 { i } else { j }
                )));
            }
            let (i, j) = (i as usize, j as usize);
            Ok(match first {
                Val::Str(s) => Val::Str(String::from_utf8_lossy(&s.as_bytes()[i..j]).into_owned()),
                Val::List(l) => Val::List(l[i..j].to_vec()),
                _ => unreachable!("checked above"),
            })
        }
        "eq" | "ne" | "lt" | "le" | "gt" | "ge" => {
            if vals.len() < 2 || (name != "eq" && vals.len() != 2) {
                return Err(format!(
                    "wrong number of args for {name}: want {} got {}",
                    if name == "eq" { "at least 2" } else { "2" },
                    vals.len()
                ));
            }
            let a = &vals[0];
            if name == "eq" {
                for b in &vals[1..] {
                    if compare(a, b).map_err(calling)? == Some(std::cmp::Ordering::Equal) {
                        return Ok(Val::Bool(true));
                    }
                }
                return Ok(Val::Bool(false));
            }
            let ord = compare(a, &vals[1]).map_err(calling)?;
            if name == "ne" {
                return Ok(Val::Bool(ord != Some(std::cmp::Ordering::Equal)));
            }
            let Some(ord) = ord else {
                return Err(calling("invalid type for comparison".into()));
            };
            use std::cmp::Ordering::*;
            Ok(Val::Bool(match name {
                "lt" => ord == Less,
                "le" => ord != Greater,
                "gt" => ord == Greater,
                _ => ord != Less,
            }))
        }
        "print" => Ok(Val::Str(sprint(vals))),
        "println" => Ok(Val::Str(
            vals.iter()
                .map(Val::go_string)
                .collect::<Vec<_>>()
                .join(" ")
                + "\n",
        )),
        "printf" => {
            let Some((f, rest)) = vals.split_first() else {
                return Err("wrong number of args for printf: want at least 1 got 0".into());
            };
            Ok(Val::Str(sprintf(string_arg(f)?, rest)))
        }
        "html" => Ok(Val::Str(html_escape(&sprint(vals)))),
        "js" => Ok(Val::Str(js_escape(&sprint(vals)))),
        "urlquery" => Ok(Val::Str(query_escape(&sprint(vals)))),
        "call" => Err(calling("there are no functions in the data to call".into())),
        "json" => {
            want(name, vals, 1)?;
            Ok(Val::Str(vals[0].to_json()))
        }
        "split" => {
            want(name, vals, 2)?;
            let (s, sep) = (string_arg(&vals[0])?, string_arg(&vals[1])?);
            Ok(Val::List(if sep.is_empty() {
                s.chars().map(|c| Val::Str(c.to_string())).collect()
            } else {
                s.split(sep).map(Val::str).collect()
            }))
        }
        "join" => {
            want(name, vals, 2)?;
            let items: Vec<&str> = match &vals[0] {
                Val::List(l) => l.iter().map(string_arg).collect::<R<_>>().map_err(|_| {
                    "wrong type for value; expected []string; got []interface {}".to_string()
                })?,
                Val::Null => Vec::new(),
                other => {
                    return Err(format!(
                        "wrong type for value; expected []string; got {}",
                        other.type_name()
                    ))
                }
            };
            Ok(Val::Str(items.join(string_arg(&vals[1])?)))
        }
        "title" => {
            want(name, vals, 1)?;
            Ok(Val::Str(title(string_arg(&vals[0])?)))
        }
        "lower" => {
            want(name, vals, 1)?;
            Ok(Val::Str(string_arg(&vals[0])?.to_lowercase()))
        }
        "upper" => {
            want(name, vals, 1)?;
            Ok(Val::Str(string_arg(&vals[0])?.to_uppercase()))
        }
        "pad" => {
            want(name, vals, 3)?;
            let s = string_arg(&vals[0])?;
            let (pre, post) = (int_arg(&vals[1])?, int_arg(&vals[2])?);
            if s.is_empty() {
                return Ok(Val::Str(String::new()));
            }
            if pre < 0 || post < 0 {
                return Err(calling("negative Repeat count".into()));
            }
            Ok(Val::Str(format!(
                "{}{s}{}",
                " ".repeat(pre as usize),
                " ".repeat(post as usize)
            )))
        }
        "truncate" => {
            want(name, vals, 2)?;
            let s = string_arg(&vals[0])?;
            let n = int_arg(&vals[1])?;
            if n < 0 {
                return Err(calling(format!("slice bounds out of range [:{n}]")));
            }
            let n = n as usize;
            if s.len() < n {
                return Ok(Val::Str(s.to_string()));
            }
            let mut end = n;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            Ok(Val::Str(s[..end].to_string()))
        }
        other => Err(format!("function \"{other}\" not defined")),
    }
}

/// Go's comparison of basic values: `None` when equal-comparable but not
/// ordered (booleans, nil).
fn compare(a: &Val, b: &Val) -> R<Option<std::cmp::Ordering>> {
    use Val::*;
    let num = |v: &Val| match v {
        Int(n) => Some(*n as f64),
        Float(f) => Some(*f),
        _ => None,
    };
    Ok(match (a, b) {
        (Str(x), Str(y)) => Some(x.cmp(y)),
        (Int(x), Int(y)) => Some(x.cmp(y)),
        (Bool(x), Bool(y)) => (x == y).then_some(std::cmp::Ordering::Equal),
        (Null, Null) => Some(std::cmp::Ordering::Equal),
        (x, y) if num(x).is_some() && num(y).is_some() => num(x).partial_cmp(&num(y)),
        (List(_) | Map(_), _) | (_, List(_) | Map(_)) => return Err("non-comparable type".into()),
        (Missing, _) | (_, Missing) => return Err("invalid type for comparison".into()),
        _ => return Err("incompatible types for comparison".into()),
    })
}

/// `fmt.Sprint`: spaces between operands when neither is a string.
fn sprint(vals: &[Val]) -> String {
    let mut out = String::new();
    for (i, v) in vals.iter().enumerate() {
        if i > 0 && !matches!(v, Val::Str(_)) && !matches!(vals[i - 1], Val::Str(_)) {
            out.push(' ');
        }
        out.push_str(&v.go_string());
    }
    out
}

/// `strings.Title`: the first letter of each word in capitals.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_sep = true;
    for c in s.chars() {
        if prev_sep {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_sep = (c.is_whitespace() || c.is_ascii()) && c != '_' && !c.is_alphanumeric();
    }
    out
}

fn html_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

fn js_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `strconv.Quote`: a double-quoted Go string literal.
pub fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32))
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32))
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `fmt.Sprintf` for the verbs templates use: `%v %s %q %d %t %f
/// %e %g %x %X %c %%`, flags `-+ 0#`, width and precision.
pub fn sprintf(format: &str, args: &[Val]) -> String {
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    let mut next = 0;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let (mut minus, mut plus, mut zero, mut space) = (false, false, false, false);
        while let Some(&f) = chars.peek() {
            match f {
                '-' => minus = true,
                '+' => plus = true,
                '0' => zero = true,
                ' ' => space = true,
                '#' => {}
                _ => break,
            }
            chars.next();
        }
        let mut width = String::new();
        while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
            width.push(d);
            chars.next();
        }
        let mut prec: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut p = String::new();
            while let Some(&d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                p.push(d);
                chars.next();
            }
            prec = Some(p.parse().unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        next += 1;
        let bad = |arg: &Val| format!("%!{verb}({}={})", arg.type_name(), arg.go_string());
        let mut s = match (verb, arg) {
            ('v', a) => match a {
                Val::Float(f) => go_float(*f, 'g', prec),
                a => a.go_string(),
            },
            ('s', Val::Str(s)) => match prec {
                Some(p) => s.chars().take(p).collect(),
                None => s.clone(),
            },
            ('s', a @ (Val::List(_) | Val::Map(_))) => a.go_string(),
            ('q', Val::Str(s)) => go_quote(s),
            ('d', Val::Int(n)) => {
                let mut s = n.to_string();
                if plus && *n >= 0 {
                    s.insert(0, '+');
                } else if space && *n >= 0 {
                    s.insert(0, ' ');
                }
                s
            }
            ('t', Val::Bool(b)) => b.to_string(),
            ('f' | 'F' | 'e' | 'g', Val::Float(f)) => go_float(*f, verb.to_ascii_lowercase(), prec),
            ('f' | 'F' | 'e' | 'g', Val::Int(n)) => format!("%!{verb}(int={n})"),
            ('x', Val::Int(n)) => format!("{n:x}"),
            ('X', Val::Int(n)) => format!("{n:X}"),
            ('x', Val::Str(s)) => s.bytes().map(|b| format!("{b:02x}")).collect(),
            ('X', Val::Str(s)) => s.bytes().map(|b| format!("{b:02X}")).collect(),
            ('c', Val::Int(n)) => char::from_u32(*n as u32)
                .map(String::from)
                .unwrap_or_default(),
            (_, a) => bad(a),
        };
        if let Ok(w) = width.parse::<usize>() {
            let len = s.chars().count();
            if len < w {
                let pad = w - len;
                if minus {
                    s.push_str(&" ".repeat(pad));
                } else if zero && matches!(arg, Val::Int(_) | Val::Float(_)) {
                    let (sign, digits) = match s.strip_prefix('-') {
                        Some(d) => ("-", d.to_string()),
                        None => ("", s.clone()),
                    };
                    s = format!("{sign}{}{digits}", "0".repeat(pad));
                } else {
                    s = format!("{}{s}", " ".repeat(pad));
                }
            }
        }
        out.push_str(&s);
    }
    if next < args.len() {
        out.push_str("%!(EXTRA ");
        out.push_str(
            &args[next..]
                .iter()
                .map(|a| format!("{}={}", a.type_name(), a.go_string()))
                .collect::<Vec<_>>()
                .join(", "),
        );
        out.push(')');
    }
    out
}
