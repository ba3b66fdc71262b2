// Starts the packaged Swagger UI on /docs (an external script: the strict CSP allows no
// inline one).
"use strict";
window.addEventListener("DOMContentLoaded", () => {
  const root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({ url: root.dataset.openapi, dom_id: "#swagger-ui",
                                deepLinking: true, persistAuthorization: false });
});
