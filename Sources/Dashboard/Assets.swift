/// The page's files, embedded in the binary by SwiftPM (`.embedInCode`): the dashboard works
/// offline and loads nothing from elsewhere.
enum Assets {
    struct File {
        let bytes: [UInt8]
        let contentType: String
    }

    static func file(at path: String) -> File? {
        switch path {
        case "/", "/index.html": return File(bytes: PackageResources.index_html, contentType: "text/html; charset=utf-8")
        case "/app.js": return File(bytes: PackageResources.app_js, contentType: "text/javascript; charset=utf-8")
        case "/app.css": return File(bytes: PackageResources.app_css, contentType: "text/css; charset=utf-8")
        default: return nil
        }
    }
}
