//! The offer as PDF: `offer.typ` compiled by Typst in memory, reading the document as JSON, with
//! the fonts built into the binary. Renders run on the blocking pool, as many at once as there
//! are cores, and Typst's memoisation cache is emptied after each, or it grows with every offer.

use std::sync::LazyLock;

use anyhow::anyhow;
use crm_kit::error::{Result, ServiceError};
use tokio::sync::Semaphore;
use typst::{
    Library, LibraryExt, World,
    diag::{FileError, FileResult},
    foundations::{Bytes, Datetime, Duration},
    syntax::{FileId, RootedPath, Source, VirtualPath, VirtualRoot},
    text::{Font, FontBook},
    utils::LazyHash,
};
use typst_layout::PagedDocument;

use super::Document;

const LAYOUT: &str = include_str!("../../../templates/offer/offer.typ");

/// The layout, and the document it reads (Typst interns file ids for the life of the process).
static MAIN: LazyLock<FileId> = LazyLock::new(|| file_id("/offer.typ"));
static DATA: LazyLock<FileId> = LazyLock::new(|| file_id("/offer.json"));

fn file_id(path: &str) -> FileId {
    let path = VirtualPath::new(path).expect("a valid built-in path");
    FileId::new(RootedPath::new(VirtualRoot::Project, path))
}

static LIBRARY: LazyLock<LazyHash<Library>> = LazyLock::new(|| LazyHash::new(Library::default()));

static FONTS: LazyLock<(LazyHash<FontBook>, Vec<Font>)> = LazyLock::new(|| {
    let fonts: Vec<Font> = typst_assets::fonts()
        .flat_map(|data| Font::iter(Bytes::new(data)))
        .collect();
    (LazyHash::new(FontBook::from_fonts(&fonts)), fonts)
});

/// Renders at once: each holds a document's layout in memory and keeps a core busy.
static RENDERING: LazyLock<Semaphore> =
    LazyLock::new(|| Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())));

pub async fn render(document: &Document) -> Result<Vec<u8>> {
    let data = serde_json::to_vec(document).map_err(|e| ServiceError::Internal(e.into()))?;
    let _permit = RENDERING
        .acquire()
        .await
        .map_err(|e| ServiceError::Internal(e.into()))?;
    tokio::task::spawn_blocking(move || compile(data))
        .await
        .map_err(|e| ServiceError::Internal(e.into()))?
        .map_err(ServiceError::Internal)
}

fn compile(data: Vec<u8>) -> anyhow::Result<Vec<u8>> {
    let world = OfferWorld {
        main: Source::new(*MAIN, LAYOUT.to_owned()),
        data: Bytes::new(data),
    };
    let pdf = typst::compile::<PagedDocument>(&world)
        .output
        .and_then(|document| typst_pdf::pdf(&document, &typst_pdf::PdfOptions::default()));
    typst::comemo::evict(0);
    pdf.map_err(|diagnostics| {
        let messages: Vec<String> = diagnostics.iter().map(|d| d.message.to_string()).collect();
        anyhow!("the offer template failed: {}", messages.join("; "))
    })
}

/// What Typst sees: the layout, the document's data, the built-in fonts, and nothing else (no
/// files, no packages, no clock).
struct OfferWorld {
    main: Source,
    data: Bytes,
}

impl World for OfferWorld {
    fn library(&self) -> &LazyHash<Library> {
        &LIBRARY
    }

    fn book(&self) -> &LazyHash<FontBook> {
        &FONTS.0
    }

    fn main(&self) -> FileId {
        self.main.id()
    }

    fn source(&self, id: FileId) -> FileResult<Source> {
        if id == self.main.id() {
            Ok(self.main.clone())
        } else {
            Err(not_found(id))
        }
    }

    fn file(&self, id: FileId) -> FileResult<Bytes> {
        if id == *DATA {
            Ok(self.data.clone())
        } else {
            Err(not_found(id))
        }
    }

    fn font(&self, index: usize) -> Option<Font> {
        FONTS.1.get(index).cloned()
    }

    fn today(&self, _offset: Option<Duration>) -> Option<Datetime> {
        None
    }
}

fn not_found(id: FileId) -> FileError {
    FileError::NotFound(id.get().vpath().get_with_slash().into())
}
