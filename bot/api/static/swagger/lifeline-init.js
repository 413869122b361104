// Starts swagger-ui on /api/v1/docs. A file rather than an inline script: the page's
// Content-Security-Policy allows scripts from the app itself only.
window.addEventListener("DOMContentLoaded", function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    presets: [SwaggerUIBundle.presets.apis],
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    // The default validator badge is an image from validator.swagger.io: nothing leaves
    // this host.
    validatorUrl: null
  });
});
