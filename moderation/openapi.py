"""The OpenAPI 3.1 description of the JSON API, served at /api/v1/openapi.json."""

ERROR = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}


def error_response(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


DOCUMENT = {
    "openapi": "3.1.0",
    "info": {"title": "moderation comments API", "version": "1.0.0",
             "description": "Read a thread's approved comments and post a new comment. Private data "
                            "(email, IP address, user agent) is never returned."},
    "servers": [{"url": "/api/v1"}],
    "paths": {
        "/threads": {
            "get": {
                "summary": "The approved comments of one article, oldest first",
                "operationId": "getThread",
                "parameters": [
                    {"name": "site", "in": "query", "required": True, "schema": {"type": "string"},
                     "description": "The site key (data-site in the snippet)."},
                    {"name": "url", "in": "query", "required": True, "schema": {"type": "string", "minLength": 1},
                     "description": "The article's canonical URL."},
                    {"name": "after", "in": "query", "required": False, "schema": {"type": "integer"},
                     "description": "The `next` value of the previous page: the following 50 top-level comments."},
                ],
                "responses": {
                    "304": {"description": "Unchanged since the ETag given in If-None-Match"},
                    "200": {"description": "The thread: 50 top-level comments with all their replies, the "
                                           "ETag, Cache-Control for browsers to revalidate and CDN-Cache-Control: "
                                           "public, max-age=30, stale-while-revalidate=60",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thread"}}}},
                    "400": error_response("The url parameter is missing."),
                    "404": error_response("There is no site with this key."),
                },
            }
        },
        "/comments": {
            "post": {
                "summary": "Post a comment; it is decided by the site's rules",
                "operationId": "createComment",
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/NewComment"}}}},
                "responses": {
                    "201": {"description": "Stored", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/Created"}}}},
                    "400": {"description": "Invalid fields, or a malformed request",
                            "content": {"application/json": {"schema": {"oneOf": [
                                {"$ref": "#/components/schemas/FieldErrors"}, {"$ref": "#/components/schemas/Error"}]}}}},
                    "403": error_response("The page's origin is not allowed by this site, or comments are closed."),
                    "404": error_response("There is no site with this key."),
                    "409": error_response("A duplicate of a comment already posted."),
                    "413": error_response("The request is too large."),
                    "429": error_response("Posting faster than the site allows."),
                },
            }
        },
    },
    "components": {"schemas": {
        "Error": ERROR,
        "FieldErrors": {"type": "object", "required": ["errors"], "properties": {"errors": {
            "type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}}}},
        "Comment": {"type": "object", "required": ["id", "parent_id", "author", "website", "body_html", "created_at"],
                    "properties": {
                        "id": {"type": "integer"},
                        "parent_id": {"type": ["integer", "null"]},
                        "author": {"type": "string"},
                        "website": {"type": ["string", "null"]},
                        "body_html": {"type": "string", "description": "Sanitized HTML"},
                        "created_at": {"type": "string", "format": "date-time"}}},
        "Thread": {"type": "object", "required": ["url", "title", "count", "comments"], "properties": {
            "url": {"type": "string"}, "title": {"type": "string"},
            "count": {"type": "integer", "description": "Approved comments in the whole thread."},
            "comments": {"type": "array", "items": {"$ref": "#/components/schemas/Comment"}},
            "next": {"type": "integer", "description": "Present when there are more top-level comments: "
                                                       "pass it as `after` for the next page."}}},
        "NewComment": {"type": "object", "required": ["site", "url", "name", "email", "body"], "properties": {
            "site": {"type": "string"},
            "url": {"type": "string", "maxLength": 2000},
            "title": {"type": ["string", "null"], "maxLength": 300},
            "parent_id": {"type": ["integer", "null"]},
            "name": {"type": "string", "maxLength": 100},
            "email": {"type": "string", "maxLength": 254},
            "website": {"type": ["string", "null"], "maxLength": 200},
            "body": {"type": "string", "maxLength": 10000},
            "notify": {"type": ["boolean", "null"],
                       "description": "Email the author when a moderator approves this comment or a reply to it."},
            "author_token": {"type": ["string", "null"],
                             "description": "The token returned with an earlier comment; proves a known author."}}},
        "Created": {"type": "object", "required": ["id", "status"], "properties": {
            "id": {"type": "integer"},
            "status": {"type": "string", "enum": ["pending", "approved", "rejected", "flagged"]},
            "author_token": {"type": "string"}}},
    }},
}
