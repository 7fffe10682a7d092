//! Files given in memory (`Ext4Params::extra_files`), laid over the scanned tree before the
//! plan: a file replaces a same-named non-directory, missing parents are created. The builder
//! stamps its release files this way instead of editing the finished filesystem, so the
//! source tree stays untouched and nothing is written twice.

use super::scan::{Kind, Node, Tree, EXT4_NAME_LEN};
use super::{Ext4Error, BLOCK_SIZE};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// A regular file the writer adds from memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraFile {
    /// Path relative to the tree root (a leading `/` is accepted).
    pub path: PathBuf,
    pub data: Vec<u8>,
    /// Permission bits (07777).
    pub perm: u16,
    pub uid: u32,
    pub gid: u32,
    /// Also the time of the parent folders this file creates.
    pub mtime: u32,
}

/// Permission bits of the parent folders an extra file creates (root-owned).
const NEW_DIR_PERM: u16 = 0o755;

/// Lay `files` over `tree`, in order (a later file with the same path wins). New nodes go
/// after the scanned ones, so inode numbers stay a pure function of tree and list.
pub fn apply(tree: &mut Tree, files: &[ExtraFile]) -> Result<(), Ext4Error> {
    for f in files {
        add(tree, f)?;
    }
    Ok(())
}

fn invalid(f: &ExtraFile, why: &str) -> Ext4Error {
    Ext4Error::Invalid(format!("extra file {}: {why}", f.path.display()))
}

fn add(tree: &mut Tree, f: &ExtraFile) -> Result<(), Ext4Error> {
    let mut names: Vec<&[u8]> = Vec::new();
    for c in f.path.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(n) if n.len() > EXT4_NAME_LEN => {
                return Err(Ext4Error::NameTooLong {
                    path: f.path.clone(),
                    len: n.len(),
                })
            }
            Component::Normal(n) => names.push(n.as_bytes()),
            _ => return Err(invalid(f, "only plain names may make up the path")),
        }
    }
    let Some((leaf, parents)) = names.split_last() else {
        return Err(invalid(f, "the path names no file"));
    };
    let mut dir = 0usize;
    let mut rel = PathBuf::new();
    for name in parents {
        rel.push(std::ffi::OsStr::from_bytes(name));
        dir = match child(tree, dir, name) {
            Some(c) if tree.nodes[c].is_dir() => c,
            Some(_) => {
                return Err(invalid(
                    f,
                    &format!("{} is not a directory in the tree", rel.display()),
                ))
            }
            None => {
                let node = new_node(Kind::Dir, NEW_DIR_PERM, 0, 0, f.mtime, &rel, dir);
                push_child(tree, dir, name, node)
            }
        };
    }
    let size = f.data.len() as u64;
    let blocks = size.div_ceil(BLOCK_SIZE);
    let kind = Kind::File {
        size,
        // One data run over the whole file (scan's form for a file without holes).
        data: (blocks > 0).then_some(0..blocks).into_iter().collect(),
    };
    let mut node = new_node(kind, f.perm & 0o7777, f.uid, f.gid, f.mtime, &f.path, dir);
    node.in_memory = Some(f.data.clone());
    match child(tree, dir, leaf) {
        None => {
            push_child(tree, dir, leaf, node);
        }
        Some(c) if tree.nodes[c].is_dir() => {
            return Err(invalid(f, "a directory of that name is in the tree"));
        }
        // A hard link: the other names keep the old content.
        Some(c) if tree.nodes[c].names > 1 => {
            tree.nodes[c].names -= 1;
            let idx = tree.nodes.len();
            tree.nodes.push(node);
            let slot = slot(tree, dir, leaf).expect("child was just found");
            tree.nodes[dir].children[slot].1 = idx;
        }
        Some(c) => tree.nodes[c] = node,
    }
    Ok(())
}

fn new_node(
    kind: Kind,
    perm: u16,
    uid: u32,
    gid: u32,
    mtime: u32,
    path: &Path,
    parent: usize,
) -> Node {
    Node {
        kind,
        perm,
        uid,
        gid,
        mtime: mtime as i64,
        mtime_nsec: 0,
        xattrs: Vec::new(),
        source: path.to_path_buf(),
        in_memory: None,
        names: 1,
        children: Vec::new(),
        parent,
    }
}

/// Index in `dir`'s children (sorted by name bytes) of `name`.
fn slot(tree: &Tree, dir: usize, name: &[u8]) -> Result<usize, usize> {
    tree.nodes[dir]
        .children
        .binary_search_by(|(n, _)| n.as_slice().cmp(name))
}

fn child(tree: &Tree, dir: usize, name: &[u8]) -> Option<usize> {
    slot(tree, dir, name)
        .ok()
        .map(|i| tree.nodes[dir].children[i].1)
}

/// Append `node` and enter it in `dir` under `name`, keeping the children sorted.
fn push_child(tree: &mut Tree, dir: usize, name: &[u8], node: Node) -> usize {
    let idx = tree.nodes.len();
    tree.nodes.push(node);
    let at = slot(tree, dir, name).expect_err("name is new in this directory");
    tree.nodes[dir].children.insert(at, (name.to_vec(), idx));
    idx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, data: &[u8]) -> ExtraFile {
        ExtraFile {
            path: path.into(),
            data: data.to_vec(),
            perm: 0o644,
            uid: 0,
            gid: 0,
            mtime: 1_700_000_000,
        }
    }

    fn lookup(tree: &Tree, path: &str) -> Option<usize> {
        let mut n = 0;
        for c in Path::new(path).iter() {
            n = child(tree, n, c.as_bytes())?;
        }
        Some(n)
    }

    #[test]
    fn replaces_a_file_and_creates_parents() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("lib")).unwrap();
        std::fs::write(d.path().join("lib/os-release"), b"old").unwrap();
        std::fs::write(d.path().join("lib/zz"), b"z").unwrap();
        let mut tree = Tree::scan(d.path(), &Default::default()).unwrap();
        let before = tree.nodes.len();
        let old = lookup(&tree, "lib/os-release").unwrap();
        apply(
            &mut tree,
            &[
                file("/lib/os-release", b"new"),
                file("share/coreos/release", b"r"),
            ],
        )
        .unwrap();
        // Replaced in place: same node, new content from memory.
        let n = &tree.nodes[lookup(&tree, "lib/os-release").unwrap()];
        assert_eq!(lookup(&tree, "lib/os-release"), Some(old));
        assert_eq!(n.in_memory.as_deref(), Some(&b"new"[..]));
        assert_eq!(
            n.kind,
            Kind::File {
                size: 3,
                data: std::iter::once(0..1).collect()
            }
        );
        // Two new folders and one file, appended; children stay sorted.
        assert_eq!(tree.nodes.len(), before + 3);
        let share = lookup(&tree, "share").unwrap();
        assert!(tree.nodes[share].is_dir() && tree.nodes[share].perm == 0o755);
        let names: Vec<_> = tree.nodes[0].children.iter().map(|c| c.0.clone()).collect();
        assert_eq!(names, vec![b"lib".to_vec(), b"share".to_vec()]);
        let r = lookup(&tree, "share/coreos/release").unwrap();
        assert_eq!(tree.nodes[r].parent, lookup(&tree, "share/coreos").unwrap());
    }

    #[test]
    fn a_hard_link_keeps_its_other_name() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("a"), b"shared").unwrap();
        std::fs::hard_link(d.path().join("a"), d.path().join("b")).unwrap();
        let mut tree = Tree::scan(d.path(), &Default::default()).unwrap();
        apply(&mut tree, &[file("b", b"mine")]).unwrap();
        let (a, b) = (lookup(&tree, "a").unwrap(), lookup(&tree, "b").unwrap());
        assert_ne!(a, b);
        assert_eq!(tree.nodes[a].names, 1);
        assert!(tree.nodes[a].in_memory.is_none());
        assert_eq!(tree.nodes[b].in_memory.as_deref(), Some(&b"mine"[..]));
    }

    #[test]
    fn refuses_directories_and_odd_paths() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("dir")).unwrap();
        std::fs::write(d.path().join("f"), b"").unwrap();
        let mut tree = Tree::scan(d.path(), &Default::default()).unwrap();
        for (path, why) in [
            ("dir", "a directory of that name"),
            ("f/x", "f is not a directory"),
            ("a/../b", "plain names"),
            ("/", "names no file"),
        ] {
            let e = apply(&mut tree, &[file(path, b"")])
                .unwrap_err()
                .to_string();
            assert!(e.contains(why) && e.contains(path), "{path}: {e}");
        }
    }
}
