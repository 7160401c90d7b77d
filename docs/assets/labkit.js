// Tap a figure to see it full size: on a phone a whole node's diagram is too small to read.
// The figure is drawn at 12 units a line; zoomed it is shown at 1.3 CSS pixels a unit (the
// size it has on a wide screen), in a layer that scrolls, and a second tap or Escape closes it.
(function () {
  "use strict";
  function close(figure) {
    figure.classList.remove("labkit-zoomed");
    figure.removeAttribute("aria-expanded");
    document.body.style.overflow = "";
  }
  function open(figure) {
    var svg = figure.querySelector("svg.labkit-diagram");
    var box = svg && svg.viewBox && svg.viewBox.baseVal;
    if (box && box.width) {
      figure.style.setProperty("--labkit-zoom-width", Math.round(box.width * 1.3) + "px");
    }
    figure.classList.add("labkit-zoomed");
    figure.setAttribute("aria-expanded", "true");
    document.body.style.overflow = "hidden";
  }
  document.addEventListener("click", function (event) {
    var figure = event.target.closest && event.target.closest(".labkit-figure");
    if (!figure || !figure.querySelector("svg.labkit-diagram")) {
      return;
    }
    if (figure.classList.contains("labkit-zoomed")) {
      close(figure);
    } else {
      open(figure);
    }
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      document.querySelectorAll(".labkit-figure.labkit-zoomed").forEach(close);
    }
  });
})();
