//! Loading a program: the root file and every file it `use`s, transitively, each parsed once.
//! A `use` path is relative to the file that says it. A cycle of `use`s is an error that shows
//! the cycle; a file used twice along different paths is loaded once. Only regular files of
//! at most [`MAX_SOURCE_BYTES`] are read: `use "/dev/zero"` would never end, and a FIFO
//! would block until something writes to it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use netc_dsl::ast::{self, Item};
use netc_dsl::{Diagnostic, FileId, SourceMap, Span};

/// Every file of one compilation, parsed.
#[derive(Debug)]
pub struct Program {
    pub sources: SourceMap,
    /// Parsed files by [`FileId`]; `None` for a file that failed to parse.
    pub files: Vec<Option<ast::File>>,
    pub root: FileId,
}

impl Program {
    /// The networks of the root file.
    pub fn networks(&self) -> Vec<&ast::Network> {
        match &self.files[self.root.0 as usize] {
            Some(f) => f
                .items
                .iter()
                .filter_map(|i| match i {
                    Item::Network(n) => Some(n),
                    _ => None,
                })
                .collect(),
            None => Vec::new(),
        }
    }

    /// Every parsed file with its id.
    pub fn parsed(&self) -> impl Iterator<Item = (FileId, &ast::File)> {
        self.files
            .iter()
            .enumerate()
            .filter_map(|(i, f)| f.as_ref().map(|f| (FileId(i as u32), f)))
    }
}

/// Reads files; tests and the macros supply their own.
pub trait Loader {
    fn read(&self, path: &Path) -> std::io::Result<String>;
}

/// Reads from the file system, with [`read_source`].
pub struct FsLoader;

impl Loader for FsLoader {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        read_source(path)
    }
}

/// The largest source file netc reads: 16 MiB, far more than a network needs (GoogLeNet is
/// 4 KiB), and a bound on what a `use` can make it read.
pub const MAX_SOURCE_BYTES: u64 = 16 * 1024 * 1024;

/// Reads the source file at `path`, which must be a regular file (not a device, a FIFO or a
/// directory) of at most [`MAX_SOURCE_BYTES`], in UTF-8.
pub fn read_source(path: &Path) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind, Read};
    let not_regular = || {
        Error::new(
            ErrorKind::InvalidInput,
            "not a regular file (netc reads sources from regular files only)",
        )
    };
    // Asked before opening, since opening a FIFO blocks until a writer comes; and asked
    // again of what was opened, in case the path changed in between.
    if !std::fs::metadata(path)?.is_file() {
        return Err(not_regular());
    }
    let file = std::fs::File::open(path)?;
    if !file.metadata()?.is_file() {
        return Err(not_regular());
    }
    // One byte more than the limit tells a file at the limit from a longer one, whatever
    // the metadata said about its length.
    let mut bytes = Vec::new();
    file.take(MAX_SOURCE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_SOURCE_BYTES {
        return Err(Error::new(
            ErrorKind::InvalidData,
            "larger than 16 MiB, the most netc reads from one source file",
        ));
    }
    String::from_utf8(bytes)
        .map_err(|_| Error::new(ErrorKind::InvalidData, "stream did not contain valid UTF-8"))
}

/// Loads `path` and everything it uses. Diagnostics are returned beside the program, which
/// holds whatever parsed.
pub fn load_file(path: &Path, loader: &dyn Loader) -> (Program, Vec<Diagnostic>) {
    let mut sources = SourceMap::new();
    match loader.read(path) {
        Ok(text) => load_text(
            sources,
            path.display().to_string(),
            text,
            path.to_path_buf(),
            loader,
        ),
        Err(e) => {
            let root = sources.add(path.display().to_string(), "");
            let d = Diagnostic::error("io", format!("cannot read `{}`: {e}", path.display()));
            (
                Program {
                    sources,
                    files: vec![None],
                    root,
                },
                vec![d],
            )
        }
    }
}

/// Loads a text whose `use`s resolve against `path`'s directory (`path` need not exist).
pub fn load_source(
    name: impl Into<String>,
    text: impl Into<String>,
    path: &Path,
    loader: &dyn Loader,
) -> (Program, Vec<Diagnostic>) {
    load_text(
        SourceMap::new(),
        name.into(),
        text.into(),
        path.to_path_buf(),
        loader,
    )
}

fn load_text(
    mut sources: SourceMap,
    name: String,
    text: String,
    path: PathBuf,
    loader: &dyn Loader,
) -> (Program, Vec<Diagnostic>) {
    let root = sources.add(name, text);
    let mut st = State {
        sources,
        files: Vec::new(),
        paths: Vec::new(),
        by_path: HashMap::new(),
        diags: Vec::new(),
        loader,
    };
    st.by_path.insert(normalize(&path), root);
    st.paths.push(path);
    st.files.push(None);
    st.visit(root, &mut Vec::new());
    (
        Program {
            sources: st.sources,
            files: st.files,
            root,
        },
        st.diags,
    )
}

struct State<'l> {
    sources: SourceMap,
    files: Vec<Option<ast::File>>,
    paths: Vec<PathBuf>,
    by_path: HashMap<PathBuf, FileId>,
    diags: Vec<Diagnostic>,
    loader: &'l dyn Loader,
}

impl State<'_> {
    /// Parses file `id` and loads what it uses; `stack` is the chain of files being loaded.
    fn visit(&mut self, id: FileId, stack: &mut Vec<FileId>) {
        let text = self.sources.get(id).text.clone();
        let file = match netc_dsl::parse(id, &text) {
            Ok(f) => f,
            Err(d) => {
                self.diags.push(d);
                return;
            }
        };
        let uses: Vec<ast::Use> = file
            .items
            .iter()
            .filter_map(|i| match i {
                Item::Use(u) => Some(u.clone()),
                _ => None,
            })
            .collect();
        self.files[id.0 as usize] = Some(file);
        stack.push(id);
        for u in uses {
            self.use_file(id, &u, stack);
        }
        stack.pop();
    }

    fn use_file(&mut self, from: FileId, u: &ast::Use, stack: &mut Vec<FileId>) {
        let dir = self.paths[from.0 as usize]
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let path = dir.join(&u.path);
        let key = normalize(&path);
        if let Some(&seen) = self.by_path.get(&key) {
            if let Some(pos) = stack.iter().position(|&f| f == seen) {
                let mut names: Vec<String> = stack[pos..]
                    .iter()
                    .map(|&f| self.sources.get(f).name.clone())
                    .collect();
                names.push(self.sources.get(seen).name.clone());
                self.diags.push(
                    Diagnostic::error("use-cycle", "these files `use` each other in a cycle")
                        .label(u.path_span, "this `use` closes the cycle")
                        .help(format!(
                            "{}; move the shared blocks into a file that uses neither",
                            names.join(" → ")
                        )),
                );
            }
            return;
        }
        match self.loader.read(&path) {
            Ok(text) => {
                let id = self.sources.add(path.display().to_string(), text);
                self.by_path.insert(key, id);
                self.paths.push(path);
                self.files.push(None);
                self.visit(id, stack);
            }
            Err(e) => {
                let d = Diagnostic::error("io", format!("cannot read `{}`: {e}", path.display()))
                    .label(u.path_span, "used here");
                self.diags
                    .push(if e.kind() == std::io::ErrorKind::NotFound {
                        d.help("a `use` path is relative to the file that says it")
                    } else {
                        d
                    });
            }
        }
    }
}

/// A path with `.` and `x/..` removed, so that one file has one key (without touching the
/// file system, which loaders other than [`FsLoader`] may not have).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Items of every loaded file, for a global namespace of blocks and consts.
pub struct Defs<'p> {
    pub consts: HashMap<&'p str, &'p ast::Const>,
    pub blocks: HashMap<&'p str, &'p ast::Block>,
}

impl<'p> Defs<'p> {
    /// Whether a call of `name` is the built-in `repeat(n, BLOCK, args..)`. A block named
    /// `repeat` (valid before repetition existed) keeps its meaning and hides it.
    pub fn is_repeat(&self, name: &str) -> bool {
        name == "repeat" && !self.blocks.contains_key(name)
    }
}

/// Collects blocks and consts of all files; a name defined twice is an error.
pub fn defs<'p>(prog: &'p Program, diags: &mut Vec<Diagnostic>) -> Defs<'p> {
    let mut consts: HashMap<&str, &ast::Const> = HashMap::new();
    let mut blocks: HashMap<&str, &ast::Block> = HashMap::new();
    let twice = |name: &str, span: Span, first: Span, what: &str| {
        let name = netc_dsl::ast::source_name(name);
        Diagnostic::error("duplicate", format!("{what} `{name}` is defined twice"))
            .label(span, "defined again here")
            .label(first, "first defined here")
    };
    for (_, file) in prog.parsed() {
        for item in &file.items {
            match item {
                Item::Const(c) => {
                    if let Some(first) = consts.get(c.name.name.as_str()) {
                        diags.push(twice(&c.name.name, c.name.span, first.name.span, "const"));
                    } else {
                        consts.insert(&c.name.name, c);
                    }
                }
                Item::Block(b) => {
                    let builtin = if crate::ops::lookup(&b.name.name).is_some() {
                        Some("op")
                    } else if crate::ops::LOSSES.contains(&b.name.name.as_str()) {
                        Some("loss")
                    } else {
                        None
                    };
                    if let Some(what) = builtin {
                        diags.push(
                            Diagnostic::error(
                                "duplicate",
                                format!("block `{}` has the name of a built-in {what}", b.name.name),
                            )
                            .label(b.name.span, "choose another name")
                            .help(format!(
                                "a block cannot hide a built-in op or loss: rename it, e.g. `{}_block`",
                                b.name.name
                            )),
                        );
                    } else if let Some(first) = blocks.get(b.name.name.as_str()) {
                        diags.push(twice(&b.name.name, b.name.span, first.name.span, "block"));
                    } else {
                        blocks.insert(&b.name.name, b);
                    }
                }
                Item::Use(_) | Item::Network(_) => {}
            }
        }
    }
    Defs { consts, blocks }
}
